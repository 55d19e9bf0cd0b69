"""Who may do what: a principal per component, each with only the rights it needs on each
server. The one table the secure stack is provisioned from (`scripts/services up --secure`,
bookstore/provision.py) and that docs/security.md describes; tests/security holds every server
to it.

A deployment is what a topic prefix, a consumer group and a RabbitMQ vhost keep apart (the live
one; the tests' `test.`): its principals are named after it (`bridge`, `test-bridge`) and hold
rights on its own topics, group and vhost only, so a test's principal cannot touch live topics.
The live operator is every server's administrator; every other principal holds only what the
code it runs uses (read from that code: what each process declares, publishes and calls).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bookstore.entities import AUDIT_QUEUE, GENERATE_QUEUE, PARKED_QUEUE, EntityTable, Topics

# The variable a store's server is configured by (`configured_by`) -> that server's name here.
STORE_SERVERS = {"POSTGRES_DSN": "postgres", "MONGO_URI": "mongo", "REDIS_URL": "redis"}
OPERATOR = "operator"


@dataclass(frozen=True)
class Deployment:
    name: str  # "" for the live one
    topic_prefix: str
    bridge_group: str
    vhost: str
    database: str  # PostgreSQL's

    def principal(self, component: str) -> str:
        return f"{self.name}-{component}" if self.name else component


LIVE = Deployment("", "", "bookstore-bridge", "/", "bookstore")
TEST = Deployment("test", "test.", "bookstore-bridge-test", "bookstore_test", "bookstore_test")
DEPLOYMENTS = (LIVE, TEST)
# The benchmarks run as the live operator, on topics (`bench.`), stores (a namespace) and a vhost
# of their own (bench/harness.py).
BENCH_VHOST = "bookstore_bench"


@dataclass(frozen=True)
class Principal:
    name: str
    component: str  # generator, bridge, worker-<queue>, beat, flower, operator
    deployment: Deployment
    servers: tuple[str, ...]  # whose credentials it holds: kafka rabbitmq redis postgres mongo
    queues: tuple[str, ...] = ()  # the Celery queues it consumes (a worker's)

    @property
    def administers(self) -> bool:
        return self.component == OPERATOR


def components(table: EntityTable) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(component, servers, queues consumed) for every process of the pipeline."""
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
        # the generate worker: publishes to the entity topics, keeps its registry in Redis
        ("generator", ("kafka", "rabbitmq", "redis"), (GENERATE_QUEUE,)),
        ("bridge", ("kafka", "rabbitmq"), ()),
    ]
    for spec in table.stores:
        store_server = STORE_SERVERS.get(spec.store_class().configured_by)
        kafka = () if spec.name == AUDIT_QUEUE else ("kafka",)  # dead letters
        servers = (*kafka, "rabbitmq", *((store_server,) if store_server else ()))
        rows.append((f"worker-{spec.name}", servers, (spec.name,)))
    rows += [
        ("beat", ("rabbitmq",), ()),
        ("flower", ("rabbitmq",), ()),
        (OPERATOR, ("kafka", "rabbitmq", "redis", "postgres", "mongo"), ()),
    ]
    return rows


def principals(
    table: EntityTable, deployments: tuple[Deployment, ...] = DEPLOYMENTS
) -> list[Principal]:
    return [
        Principal(d.principal(c), c, d, servers, queues)
        for d in deployments
        for c, servers, queues in components(table)
    ]


def find(table: EntityTable, name: str) -> Principal:
    for p in principals(table):
        if p.name == name:
            return p
    known = ", ".join(p.name for p in principals(table))
    raise KeyError(f"no principal {name!r} (known: {known})")


# ---- Kafka: (resource type, name, pattern, operations), for kafka.admin's ACL types


@dataclass(frozen=True)
class KafkaGrant:
    resource: str  # TOPIC, GROUP, CLUSTER
    name: str
    pattern: str  # LITERAL, PREFIXED
    operations: tuple[str, ...]


def kafka_grants(p: Principal, table: EntityTable) -> list[KafkaGrant]:
    """The live operator is a super user (the broker's configuration names it); the others:"""
    names = Topics(p.deployment.topic_prefix, table)
    each = [(t, "LITERAL") for t in names.entities]
    if p.component == "generator":
        # it checks the topics' configuration before it publishes (ensure_topics), creating
        # none: they exist since `up --secure` (the operator) or the bridge's start
        return [
            *(KafkaGrant("TOPIC", t, pat, ("WRITE",)) for t, pat in each),
            *(
                KafkaGrant("TOPIC", t, pat, ("DESCRIBE", "DESCRIBE_CONFIGS"))
                for t, pat in [*each, (names.dead_letters, "LITERAL")]
            ),
            KafkaGrant("CLUSTER", "kafka-cluster", "LITERAL", ("DESCRIBE",)),
        ]
    if p.component == "bridge":
        # it reads the entity topics, and creates and aligns every topic of its deployment at
        # start (bookstore.topic_config.ensure_topics), as it always has
        everything = [*each, (names.dead_letters, "LITERAL")]
        own = ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS")
        return [
            *(KafkaGrant("TOPIC", t, pat, ("READ",)) for t, pat in each),
            *(KafkaGrant("TOPIC", t, pat, own) for t, pat in everything),
            KafkaGrant("GROUP", p.deployment.bridge_group, "LITERAL", ("READ", "DESCRIBE")),
            KafkaGrant("CLUSTER", "kafka-cluster", "LITERAL", ("DESCRIBE",)),
        ]
    if p.component.startswith("worker-") and "kafka" in p.servers:
        return [KafkaGrant("TOPIC", names.dead_letters, "LITERAL", ("WRITE", "DESCRIBE"))]
    if p.administers and p.deployment != LIVE:  # the live one is a super user
        prefix = p.deployment.topic_prefix
        return [
            KafkaGrant("TOPIC", prefix, "PREFIXED", ("ALL",)),
            KafkaGrant("GROUP", prefix, "PREFIXED", ("ALL",)),
            KafkaGrant("GROUP", p.deployment.bridge_group, "LITERAL", ("ALL",)),
            KafkaGrant("CLUSTER", "kafka-cluster", "LITERAL", ("DESCRIBE",)),
        ]
    return []


# ---- RabbitMQ: configure, write, read (regular expressions on exchange and queue names)

# What every Celery process declares for itself: remote control (each worker's mailbox
# `<name>.celery.pidbox`, the callers' `reply.celery.pidbox` replies), events (`celeryev`), and
# the delayed-delivery topology a retried task's countdown waits in (tasks/consumer.py).
_CELERY_OWN = (
    r"celery\.pidbox",
    r"reply\.celery\.pidbox",
    r"[^.]+@.+\.celery\.pidbox",
    r"[0-9a-f-]{36}\.reply\.celery\.pidbox",  # a caller's replies (tasks/control.py)
    r"celeryev(\..*)?",
    r"celery_delayed_.*",
)


def _any_of(names: list[str]) -> str:
    return "^(" + "|".join(names) + ")$" if names else "^$"


def rabbitmq_permissions(p: Principal, table: EntityTable) -> tuple[str, str, str]:
    """(configure, write, read) on the deployment's vhost. Declaring a queue that dead-letters
    needs write on `parked` and read on the queue itself (RabbitMQ checks both)."""
    if p.administers:
        return (".*", ".*", ".*")
    own = [re.escape(q) for q in p.queues]
    parked = re.escape(PARKED_QUEUE)
    celery = list(_CELERY_OWN)
    if p.component == "bridge":
        # it declares the pipeline's queues (generate's too: it replaces an earlier release's)
        # and `parked`; binding a queue to its exchange needs write on it and read on that
        every = _any_of([*(re.escape(q) for q in table.celery_queues), parked])
        return (every, every, every)
    if p.component == "beat":
        # publishing declares the queue and binds it (read on its exchange)
        generate = _any_of([re.escape(GENERATE_QUEUE)])
        return (generate, generate, generate)
    if p.component == "flower":
        return (_any_of(celery), _any_of(celery), _any_of(celery))
    # a worker: its own queue, and retries published back into it
    return (
        _any_of([*own, parked, *celery]),
        _any_of([*own, parked, *celery]),
        _any_of([*own, *celery]),
    )


# ---- Redis: an ACL rule per principal (commands and key patterns its code uses)

_REDIS_ORDERS = (
    "~order:* ~customer:*:orders ~orders -@all +ping +select +evalsha +script|load +script|exists"
    " +type +hmget +hset +zadd +zrem +sadd +zrevrange +hgetall +sscan +scard +scan +zrange +del"
)
_REDIS_GENERATOR = "~generator:* -@all +ping +select +sadd +srandmember"


def redis_rule(p: Principal) -> str | None:
    if "redis" not in p.servers:
        return None
    if p.administers:
        return "~* &* +@all"
    if p.component == "generator":
        return _REDIS_GENERATOR
    return _REDIS_ORDERS


# ---- PostgreSQL: the operator owns the deployment's database and runs its schema; a worker
# reads and upserts (INSERT ... ON CONFLICT needs SELECT on the columns it reads).


def postgres_grants(p: Principal) -> list[str]:
    """SQL run in the deployment's database, by a superuser, once the schema exists."""
    if "postgres" not in p.servers or p.administers:
        return []
    role = f'"{p.name}"'
    return [
        f"GRANT CONNECT ON DATABASE {p.deployment.database} TO {role}",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE ON customers TO {role}",
    ]
