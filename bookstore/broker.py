"""RabbitMQ as the pipeline uses it: how every process connects, the task names, and the queues.

Kombu alone (no Celery configuration, no store): the bridge, the CLI and the Celery edge
(celeryconfig.py) all take the topology from here.

One quorum queue per store (and audit, generate), replicated on every node of a cluster (one
node: one copy, the same code path), each dead-lettering into the quorum queue `parked`, where a
task that must not run again waits for an operator (`python -m bookstore parked list|requeue`).

- Each queue has a topic exchange of its name (routing key: the name), so that Celery's native
  delayed delivery can bring a retried task back to its own queue after its countdown: with
  quorum queues a worker cannot hold a countdown task without blocking (no global QoS), so the
  countdown waits in RabbitMQ's `celery_delayed_*` queues instead (tasks/consumer.py).
- Dead-lettering is at-least-once (`x-dead-letter-strategy`, which needs `x-overflow:
  reject-publish`): a rejected task stays in its queue until `parked` confirmed its copy.
- `x-delivery-limit` is set on purpose (RabbitMQ 3.10 has no default, 4.x 20; -1 and 0 park at
  the first return on 3.10): every return of an unacknowledged task counts, a worker process
  killed by its task as much as a connection lost in an outage. DELIVERY_LIMIT gives a record
  that crashes the worker process itself a way out into `parked`, while an outage costs each
  task at most one delivery per node failure.
- `generate` holds clock ticks (beat gives each one interval to run, as the AMQP expiration of
  its message), not data: it has no dead-letter exchange, so a tick that expired, or that failed
  for good, is dropped by RabbitMQ, never parked. `parked` keeps meaning "a task that needs a
  person".
- A queue of an earlier release (classic, direct exchange, or a `generate` that dead-lettered
  its ticks) cannot be redeclared: an empty one is replaced at start-up; one holding tasks needs
  `python -m bookstore queues migrate`.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import kombu.transport.pyamqp
from amqp.exceptions import AMQPNotImplementedError, NotFound, PreconditionFailed
from kombu import Connection, Exchange, Queue

from bookstore.entities import GENERATE_QUEUE, PARKED_QUEUE, Entity, EntityTable

if TYPE_CHECKING:
    from bookstore.config import Settings

log = logging.getLogger(__name__)


AUDIT_TASK = "tasks.audit.record_messages"  # every raw record into the audit log (tasks/audit.py)


def persist_task(entity: Entity) -> str:
    """The name of an entity's persistence task (tasks/persist.py), by which the bridge sends
    it and Celery routes it to the entity's queue: tasks.persist.store_customers, ..."""
    return f"tasks.persist.store_{entity.name}"


# How every process talks to RabbitMQ (celeryconfig's broker options; `connect` for the others).
# AMQP heartbeats every HEARTBEAT seconds (the least RabbitMQ recommends): a node that died without
# closing its connections (cut off, powered down) is noticed within two (Celery's 120 s default:
# four minutes of a worker consuming nothing). Every publish waits for RabbitMQ's confirm, and no
# single wait for RabbitMQ lasts longer than HEARTBEAT: a live node sends something at least every
# HEARTBEAT / 2 s (a heartbeat when it has nothing else), so silence that long means a node that
# stopped answering but keeps its connections open (paused, hung), which made a publish, and so
# the whole process, wait for as long as it did. The publish then fails over to the next node of
# CELERY_BROKER_URL (kombu's retry: three such waits, as kombu first closes the channel and the
# connection politely), at least once (the stores are idempotent).
HEARTBEAT = 5
TRANSPORT_OPTIONS = {
    "confirm_publish": True,
    "read_timeout": HEARTBEAT,
    "write_timeout": HEARTBEAT,
}


# How a publish retries (kombu's ensure: reconnect, to the next node when one is gone), for the
# Celery processes (task_publish_retry_policy) and the bridge alike: Celery's default, explicit.
PUBLISH_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_max": 1,
    "interval_step": 0.2,
}


def broker_tls(settings: Settings) -> dict[str, Any] | None:
    """py-amqp's TLS options for an amqps:// CELERY_BROKER_URL (celeryconfig's
    `broker_use_ssl`; None for amqp://): the node's certificate checked against
    CELERY_BROKER_CAFILE (or the system's CAs) and against the address dialled, which kombu
    fills in as `server_hostname` on each connection (see `_verify_the_node_dialled`)."""
    if not settings.celery_broker_url.lstrip().startswith("amqps://"):
        return None
    return {
        "ca_certs": settings.celery_broker_cafile or None,
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,
        "tls_minimum_version": ssl.TLSVersion.TLSv1_2,
    }


def _verify_the_node_dialled() -> None:
    """kombu (5.7) writes the first node's host into the TLS options themselves, the one dict
    every connection of the process shares, so every later connection, the failover to another
    node included, would check the certificate against the first node's name and be refused.
    Each connection gets its own copy of the options to fill in. (tests/security: a failover
    with hostname verification on.)"""
    transport = kombu.transport.pyamqp.Transport
    establish = transport.establish_connection
    if getattr(establish, "copies_tls_options", False):
        return

    def establish_connection(self: Any) -> Any:
        shared = self.client.ssl
        if not isinstance(shared, dict):
            return establish(self)
        self.client.ssl = dict(shared)
        try:
            return establish(self)
        finally:
            self.client.ssl = shared

    establish_connection.copies_tls_options = True  # type: ignore[attr-defined]
    transport.establish_connection = establish_connection  # type: ignore[method-assign]


_verify_the_node_dialled()


def connect(settings: Settings, connect_timeout: float = 5) -> Connection:
    """A connection to the broker(s) CELERY_BROKER_URL names, as the Celery processes make it
    (heartbeats, bounded waits, publisher confirms; the next node when one fails). Lazy: it
    connects on first use."""
    return Connection(
        settings.celery_broker_url,
        ssl=broker_tls(settings) or False,
        connect_timeout=connect_timeout,
        heartbeat=HEARTBEAT,
        transport_options=TRANSPORT_OPTIONS,
    )


def reach(conn: Connection) -> Connection:
    """Connect now, trying each node of a cluster once, from the first: one that is away or does
    not answer (paused, cut off) costs its connect timeout, then the next is tried. Raises
    kombu's OperationalError when none answers."""
    conn.ensure_connection(max_retries=max(1, len(conn.alt) - 1), interval_start=0, interval_step=0)
    return conn


QUORUM = {"x-queue-type": "quorum"}
DELIVERY_LIMIT = 50
# Listing `parked` returns its messages by closing the channel, which counts as a failed
# delivery; `parked` has no dead-letter exchange, so past its limit a task would be dropped.
PARKED_DELIVERY_LIMIT = 1_000_000_000

PARKED_EXCHANGE = Exchange(PARKED_QUEUE, type="fanout", durable=True)
# Not consumed by any worker (it is not among the task queues): it only holds.
PARKED = Queue(
    PARKED_QUEUE,
    PARKED_EXCHANGE,
    durable=True,
    queue_arguments={**QUORUM, "x-delivery-limit": PARKED_DELIVERY_LIMIT},
)


def queues_of(table: EntityTable) -> tuple[Queue, ...]:
    """The queues the workers consume, for the entities of `table` (celeryconfig's
    `task_queues`): each store's, audit and generate."""
    return tuple(_task_queue(name) for name in table.celery_queues)


def parks(queue: str) -> bool:
    """Whether a task that must not run again goes from `queue` into `parked` (every queue but
    `generate`, whose ticks are dropped)."""
    return queue != GENERATE_QUEUE


def _task_queue(name: str) -> Queue:
    arguments = {**QUORUM, "x-delivery-limit": DELIVERY_LIMIT}
    if parks(name):
        arguments |= {
            "x-dead-letter-exchange": PARKED_QUEUE,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return Queue(
        name,
        Exchange(name, type="topic", durable=True),  # a task goes to its own queue only
        routing_key=name,
        durable=True,
        queue_arguments=arguments,
    )


def all_queues(table: EntityTable) -> tuple[Queue, ...]:
    """Every queue of the pipeline: `parked` first (a task rejected meanwhile reaches it)."""
    return (PARKED, *queues_of(table))


class QueueMigrationNeeded(RuntimeError):
    """A queue of an earlier release (classic) still holds tasks."""


def declare_parked(conn: Connection) -> None:
    """Make sure the parked queue exists (a task rejected meanwhile reaches it at once)."""
    PARKED(conn.default_channel).declare()


def declare(conn: Connection, table: EntityTable, only: Collection[str] | None = None) -> None:
    """Declare the parked queue, then every task queue of the entities of `table` (each with
    its exchange), or only the queues named in `only` (a worker's own) and `parked` if it does
    not exist yet: binding `parked` needs read on it, which a worker's user does not hold on the
    secure stack (docs/security.md), where it exists from the start.

    A queue declared by an earlier release (a classic queue, a direct exchange) cannot be
    redeclared: when it is empty it is replaced; when it holds tasks, `QueueMigrationNeeded`
    says what to run.
    """
    wanted = all_queues(table)
    if only is not None:
        wanted = tuple(
            q for q in wanted if q.name in only or (q is PARKED and not _exists(conn, q.name))
        )
    for queue in wanted:
        if _declared(conn, queue):
            continue
        waiting = _waiting(conn, queue.name)
        if waiting:
            raise QueueMigrationNeeded(
                f"queue {queue.name!r} of an earlier release (a classic queue) holds "
                f"{waiting} task(s): stop that release's processes, then run `python -m "
                "bookstore queues migrate` (it moves them into the new queue)"
            )
        _replace(conn, queue)
        log.warning("queue %s of an earlier release replaced (it was empty)", queue.name)


def _declared(conn: Connection, queue: Queue) -> bool:
    """Declare `queue` as this release does; False if an earlier release declared it otherwise
    (RabbitMQ refuses the redeclaration and closes the channel)."""
    try:
        queue(conn.channel()).declare()
        return True
    except PreconditionFailed:
        return False


def _waiting(conn: Connection, name: str) -> int:
    try:
        return conn.channel().queue_declare(name, passive=True).message_count
    except NotFound:  # only the exchange differed
        return 0


def _replace(conn: Connection, queue: Queue) -> None:
    """Delete the earlier release's queue (only if still empty: a classic queue refuses if a task
    arrived meanwhile; a quorum queue has no such flag, and is checked just before) and
    exchange, and declare this release's."""
    channel = conn.channel()
    try:
        channel.queue_delete(queue.name, if_empty=True)
    except NotFound:
        channel = conn.channel()
    except AMQPNotImplementedError:  # a quorum queue (RabbitMQ closed the connection)
        if waiting := _waiting(conn, queue.name):
            raise QueueMigrationNeeded(f"queue {queue.name!r} received {waiting} task(s)") from None
        channel = conn.channel()
        channel.queue_delete(queue.name)
    channel.exchange_delete(queue.name)
    queue(channel).declare()


# Message properties a move keeps (the body and these are the task, whatever the queue).
_PROPERTIES = ("content_type", "content_encoding", "priority", "correlation_id", "reply_to")


def migrate(conn: Connection, queue: Queue, say: Callable[[str], None] = log.info) -> int:
    """Move `queue` of an earlier release into this release's declaration, losing no message:
    its messages go to a temporary quorum queue `<name>.migrating` (each acknowledged only once
    RabbitMQ confirmed its copy), the old queue and exchange are deleted, the new ones declared,
    and the messages moved back. Safe to run again after any interruption: it resumes from
    what it finds (a crash between a confirm and its ack leaves a duplicate, never a gap).
    Returns the messages the queue holds afterwards. `conn` must publish with confirms."""
    holding = Queue(f"{queue.name}.migrating", durable=True, queue_arguments=QUORUM)
    if not _declared(conn, queue):
        consumers = conn.channel().queue_declare(queue.name, passive=True).consumer_count
        if consumers:
            raise QueueMigrationNeeded(
                f"queue {queue.name!r} has {consumers} consumer(s): stop the earlier release's "
                "workers first"
            )
        holding(conn.channel()).declare()
        moved = _move(conn, queue.name, exchange="", routing_key=holding.name)
        say(f"{queue.name}: {moved} task(s) set aside in {holding.name}")
        _replace(conn, queue)
        say(f"{queue.name}: now a quorum queue")
    if _exists(conn, holding.name):
        moved = _move(conn, holding.name, exchange=queue.exchange.name, routing_key=queue.name)
        say(f"{queue.name}: {moved} task(s) moved back")
        conn.channel().queue_delete(holding.name)  # quorum queues refuse if_empty; it is
    return _waiting(conn, queue.name)


def _exists(conn: Connection, name: str) -> bool:
    """A passive declaration (RabbitMQ checks no right for it): the queue exists."""
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except NotFound:
        return False


def _move(conn: Connection, source: str, exchange: str, routing_key: str) -> int:
    channel = conn.channel()
    producer = conn.Producer(channel)
    moved = 0
    while (message := channel.basic_get(source, no_ack=False)) is not None:
        properties = message.properties
        producer.publish(
            message.body,
            exchange=exchange,
            routing_key=routing_key,
            headers=properties.get("application_headers") or {},
            delivery_mode=2,
            retry=False,
            **{p: properties[p] for p in _PROPERTIES if p in properties},
        )  # returns once RabbitMQ confirmed the copy
        channel.basic_ack(message.delivery_tag)
        moved += 1
    channel.close()
    return moved
