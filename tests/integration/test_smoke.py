"""One smoke test per server, over real connections: each fails when its server is missing."""

from __future__ import annotations

import uuid

import psycopg2
import pymongo
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from tests.support import wait_until


def test_kafka_produce_then_consumer_group_commits_and_resumes(settings):
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
        )
        for i in range(4):
            producer.send(topic, key=b"k", value=f"m{i}".encode()).get(timeout=30)
        producer.close()

        def consume(n: int) -> list[bytes]:
            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                group_id=f"{topic}-group",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            got: list[bytes] = []
            wait_until(
                lambda: (
                    got.extend(
                        r.value
                        for rs in consumer.poll(500, max_records=n - len(got)).values()
                        for r in rs
                    )
                    or len(got) >= n
                ),
                60,
                f"{n} records from {topic}",
            )
            consumer.commit()
            consumer.close()
            return got

        assert consume(2) == [b"m0", b"m1"]
        assert consume(2) == [b"m2", b"m3"]  # the group resumed from its committed offset
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_postgres_round_trip(settings):
    conn = psycopg2.connect(settings.store("postgres").dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE smoke (id int PRIMARY KEY, v text)")
            cur.execute("INSERT INTO smoke VALUES (1, 'olá')")
            cur.execute("SELECT v FROM smoke WHERE id = 1")
            assert cur.fetchone() == ("olá",)
    finally:
        conn.close()


def test_mongo_upsert_find_and_index(settings):
    client = pymongo.MongoClient(settings.store("mongo").uri, serverSelectionTimeoutMS=5000)
    coll = client[settings.store("mongo").db][f"smoke_{uuid.uuid4().hex[:8]}"]
    try:
        coll.create_index("isbn")
        coll.update_one({"_id": "b1"}, {"$set": {"isbn": "9780000000002"}}, upsert=True)
        coll.update_one({"_id": "b1"}, {"$set": {"title": "T"}}, upsert=True)
        assert coll.find_one({"isbn": "9780000000002"}) == {
            "_id": "b1",
            "isbn": "9780000000002",
            "title": "T",
        }
        assert "isbn_1" in coll.index_information()
    finally:
        coll.drop()
        client.close()


def test_redis_round_trip(settings):
    r = redis.Redis.from_url(settings.redis_url)
    key = f"smoke:{uuid.uuid4().hex}"
    r.hset(key, mapping={"a": "1"})
    assert r.hgetall(key) == {b"a": b"1"}
    r.delete(key)


def test_celery_task_runs_on_a_real_worker_through_rabbitmq(processes, tmp_path):
    from tests.integration.smoke_app import SMOKE, app, touch

    with app.connection_for_write() as conn:  # a queue of an earlier release: a classic queue
        conn.default_channel.queue_delete(SMOKE.name)

    processes.start(
        "worker-smoke",
        "-m",
        "celery",
        "-A",
        "tests.integration.smoke_app",
        "worker",
        "-Q",
        "smoke",
        "--concurrency=1",
        "--without-mingle",
        "--without-gossip",
    )
    marker = tmp_path / "ran"
    touch.apply_async((str(marker), "hello"), queue="smoke", routing_key="smoke")
    wait_until(marker.exists, 60, "the smoke task to run on the worker")
    assert marker.read_text() == "hello"
