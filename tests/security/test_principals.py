"""Each principal may do what its component does and nothing else (bookstore/principals.py):
every denial next to the same principal's allowed use, so a test cannot pass because the
principal can do nothing at all."""

from __future__ import annotations

import uuid

import psycopg2
import psycopg2.errors
import pytest
import redis
from amqp.exceptions import AccessRefused

from bookstore.broker import connect
from bookstore.kafka import client_options
from tests.security.conftest import settings_of

# ---- Kafka


def produce(principal: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**client_options(settings_of(principal)), max_block_ms=10_000)
    try:
        producer.send(topic, b'{"probe": true}').get(timeout=15)
    finally:
        producer.close()


def consume(principal: str, topic: str, group: str) -> None:
    """Join `group` on `topic`: raises what the broker refused."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        **client_options(settings_of(principal)),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    try:
        consumer.subscribe([topic])
        for _ in range(10):
            consumer.poll(timeout_ms=1_000)
            if consumer.assignment():
                return
        raise AssertionError(f"{principal} got no partition of {topic}")
    finally:
        consumer.close()


def visible_topics(principal: str) -> set[str]:
    """The topics Kafka tells `principal` exist: those it may describe (the others it cannot
    read either: reading needs describing)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**client_options(settings_of(principal)), group_id=None)
    try:
        return consumer.topics()
    finally:
        consumer.close()


def test_only_the_generator_writes_the_entity_topics():
    from kafka.errors import KafkaError

    produce("generator", "orders")
    for principal in ("bridge", "worker-postgres", "test-generator"):
        # refused per topic, or already when asking for a producer id (no write anywhere)
        with pytest.raises(KafkaError, match="AuthorizationFailed"):
            produce(principal, "orders")


def test_each_principal_sees_only_its_topics():
    entities = {"customers", "books", "orders"}
    assert visible_topics("worker-postgres") == {"dead-letters"}
    assert visible_topics("bridge") == {*entities, "dead-letters"}
    assert visible_topics("generator") == {*entities, "dead-letters"}
    produce("worker-postgres", "dead-letters")


def test_the_bridge_group_is_the_bridges_alone():
    from kafka.errors import GroupAuthorizationFailedError

    consume("bridge", "customers", group="bookstore-bridge")
    with pytest.raises(GroupAuthorizationFailedError):
        consume("generator", "customers", group="bookstore-bridge")


def test_a_test_principal_cannot_touch_live_topics():
    for principal in ("test-bridge", "test-operator"):
        seen = visible_topics(principal)
        assert "test.customers" in seen
        assert all(t.startswith("test.") for t in seen), (principal, seen)
    consume("test-bridge", "test.customers", group="bookstore-bridge-test")
    produce("test-generator", "test.orders")


def test_only_the_operator_deletes_topics():
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAuthorizationFailedError

    name = f"test.probe-{uuid.uuid4().hex[:8]}"
    operator = KafkaAdminClient(**client_options(settings_of("test-operator")))
    bridge = KafkaAdminClient(**client_options(settings_of("bridge")))
    try:
        operator.create_topics([NewTopic(name, 1, 1)])
        with pytest.raises(TopicAuthorizationFailedError):
            bridge.delete_topics(["customers"])
        with pytest.raises(TopicAuthorizationFailedError):
            operator.delete_topics(["customers"])
        operator.delete_topics([name])
    finally:
        operator.close()
        bridge.close()


# ---- RabbitMQ


def take_one(principal: str, queue: str) -> None:
    """basic.get from `queue` as `principal` (nothing is taken: an empty queue, no ack)."""
    with connect(settings_of(principal)) as conn:
        channel = conn.channel()
        message = channel.basic_get(queue, no_ack=False)
        if message is not None:
            channel.basic_reject(message.delivery_tag, requeue=True)


def declare(principal: str, queue: str) -> None:
    """Declare `queue` as the product does (a quorum queue dead-lettering into `parked`)."""
    from bookstore.broker import PARKED, queues_of
    from bookstore.entities import load_table

    (wanted,) = [q for q in queues_of(load_table()) if q.name == queue]
    with connect(settings_of(principal)) as conn:
        PARKED(conn.channel()).declare()
        wanted(conn.channel()).declare()


def test_a_worker_reads_its_own_queue_only():
    take_one("worker-postgres", "postgres")
    for queue in ("mongo", "audit", "parked", "generate"):
        with pytest.raises(AccessRefused):
            take_one("worker-postgres", queue)


def test_beat_and_flower_read_no_task_queue():
    for principal in ("beat", "flower"):
        with pytest.raises(AccessRefused):
            take_one(principal, "postgres")


def test_a_test_principal_cannot_reach_the_live_vhost():
    from amqp.exceptions import NotAllowed

    declare("test-bridge", "postgres")
    take_one("test-worker-postgres", "postgres")  # on its own vhost
    settings = settings_of("test-worker-postgres")
    live = settings.replace(celery_broker_url=settings.celery_broker_url.rsplit("/", 1)[0] + "/")
    with connect(live) as conn, pytest.raises(NotAllowed):
        conn.connect()


# ---- Redis


def redis_as(principal: str) -> redis.Redis:
    return redis.Redis.from_url(settings_of(principal).redis_url, socket_timeout=5)


def test_the_orders_user_writes_orders_and_nothing_else():
    orders = redis_as("worker-redis")
    assert orders.sadd("orders", "probe") in (0, 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        orders.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        orders.sadd("generator:customer_ids", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        orders.config_get("*")


def test_the_generator_keeps_its_registry_and_touches_no_order():
    generator = redis_as("generator")
    assert generator.sadd("generator:customer_ids", "probe") in (0, 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        generator.hset("order:x", "quantity", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        generator.keys("*")


# ---- PostgreSQL


def postgres_as(principal: str, database: str | None = None):
    dsn = settings_of(principal).store("postgres").dsn
    if database:
        dsn = dsn.replace("/bookstore_test?", f"/{database}?").replace(
            "/bookstore?", f"/{database}?"
        )
    return psycopg2.connect(dsn, connect_timeout=5)


def test_the_workers_role_reads_and_upserts_customers_only():
    conn = postgres_as("worker-postgres")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers")
        for statement in (
            "CREATE TABLE probe (id int)",
            "TRUNCATE customers",
            "DELETE FROM customers",
            "DROP TABLE customers",
            "SELECT * FROM rebuild_progress",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn, conn.cursor() as cur:
                cur.execute(statement)
    finally:
        conn.close()


def test_a_test_role_cannot_read_live_customers():
    own = postgres_as("test-worker-postgres")
    live = postgres_as("test-worker-postgres", database="bookstore")
    try:
        with own, own.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers")
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), live, live.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers")
    finally:
        own.close()
        live.close()
