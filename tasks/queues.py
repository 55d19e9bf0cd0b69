"""The Celery queues in RabbitMQ: one durable queue per store (and audit, generate), each
dead-lettering into the `parked` queue, where a task that must not run again waits for an
operator (`python -m bookstore parked list|requeue`).

A message rejected from a queue whose dead-letter exchange does not exist would be dropped, so
every process that publishes or consumes tasks declares the parked queue first.
"""

from __future__ import annotations

import logging

from amqp.exceptions import PreconditionFailed
from celery import Celery
from kombu import Connection, Exchange, Queue

from bookstore.entities import CELERY_QUEUES, PARKED_QUEUE

log = logging.getLogger(__name__)

PARKED_EXCHANGE = Exchange(PARKED_QUEUE, type="fanout", durable=True)
# Not consumed by any worker (it is not among the task queues): it only holds.
PARKED = Queue(PARKED_QUEUE, PARKED_EXCHANGE, durable=True)

TASK_QUEUES = tuple(
    Queue(
        name,
        Exchange(name, type="direct"),  # a task goes to its own queue only, never to every worker
        routing_key=name,
        durable=True,
        queue_arguments={"x-dead-letter-exchange": PARKED_QUEUE},
    )
    for name in CELERY_QUEUES
)


class QueueMigrationNeeded(RuntimeError):
    """A queue from an earlier release (without dead-lettering) still holds tasks."""


def declare_parked(app: Celery) -> None:
    """Make sure the parked queue exists (before a task is rejected into it)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        PARKED(conn.default_channel).declare()


def declare(app: Celery) -> None:
    """Declare the parked queue, then every task queue with its dead-letter exchange.

    A task queue declared by an earlier release, without dead-lettering, cannot be redeclared
    (RabbitMQ refuses other arguments): when it is empty it is replaced; when it holds tasks,
    `QueueMigrationNeeded` says so (let that release's workers drain it first).
    """
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=5)
        PARKED(conn.default_channel).declare()
        for queue in TASK_QUEUES:
            _declare_or_migrate(conn, queue)


def _declare_or_migrate(conn: Connection, queue: Queue) -> None:
    try:
        queue(conn.channel()).declare()
        return
    except PreconditionFailed:
        pass  # the channel is closed by RabbitMQ; use a new one
    channel = conn.channel()
    _, waiting, _ = channel.queue_declare(queue.name, passive=True)
    if waiting:
        raise QueueMigrationNeeded(
            f"queue {queue.name!r} was declared without dead-lettering and holds {waiting} "
            "task(s): run the previous release's workers until it is empty, then start again"
        )
    channel.queue_delete(queue.name, if_empty=True)
    queue(channel).declare()
    log.warning("queue %s redeclared to dead-letter into %s", queue.name, PARKED_QUEUE)
