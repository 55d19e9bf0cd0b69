"""The test suite never touches the product's data: it runs in a namespace of its own on the
same servers (tests/integration/conftest.py). After its pipeline stored and dead-lettered a
tagged dataset, the product's topics (dead letters included) and stores hold none of it, so
`scripts/run` after `scripts/test` starts on the product's own data only."""

from __future__ import annotations

import psycopg2
import pymongo
import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from bookstore.config import Settings, load_settings
from bookstore.entities import topics
from bookstore.kafka import offsets
from tests.integration.pipeline import (
    Dataset,
    Pipeline,
    Stores,
    build_dataset,
    dead_letters,
    produce,
)
from tests.support import REPO, wait_until


def product() -> Settings:
    """The settings the product runs with on these servers: where it keeps its data (its
    topics' prefix, every store's variables) at their defaults (tests/unit/test_settings.py
    checks that the suite moves every one of them)."""
    mine = load_settings()
    places = {
        "KAFKA_TOPIC_PREFIX",
        *(name for spec in mine.entities.stores for name in mine.store(spec.name).to_env()),
    }
    with pytest.MonkeyPatch.context() as env:
        for variable in places:
            env.delenv(variable, raising=False)
        return load_settings(stores=True)  # read now, inside this environment


def ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offsets of every topic of `settings` that exists."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        existing = set(admin.list_topics()) & set(topics(settings).all)
    finally:
        admin.close()
    return offsets(settings, sorted(existing))[1] if existing else {}


def written_since(settings: Settings, since: dict[TopicPartition, int], tag: str) -> list[str]:
    """The topics of `settings` that received a record with `tag` after `since` (a topic that
    did not exist then is read from its start)."""
    now = ends(settings)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    found: set[str] = set()
    try:
        consumer.assign(list(now))
        for tp in now:
            consumer.seek(tp, since.get(tp, 0))
        while any(consumer.position(tp) < end for tp, end in now.items()):
            for tp, records in consumer.poll(1000).items():
                if any(tag.encode() in (r.value or b"") + (r.key or b"") for r in records):
                    found.add(tp.topic)
    finally:
        consumer.close()
    return sorted(found)


def stored(settings: Settings, ds: Dataset) -> list[str]:
    """The stores of `settings` holding any entity of `ds`, and the audit log naming its tag."""
    found = []
    with psycopg2.connect(settings.store("postgres").dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('customers') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("SELECT 1 FROM customers WHERE id = ANY(%s::uuid[])", (list(ds.customers),))
            if cur.fetchone():
                found.append("PostgreSQL")
    conn.close()
    mongo = pymongo.MongoClient(settings.store("mongo").uri)
    if mongo[settings.store("mongo").db].books.find_one({"_id": {"$in": list(ds.books)}}):
        found.append("MongoDB")
    mongo.close()
    r = redis.Redis.from_url(settings.store("redis").url)
    if r.exists(*(f"order:{oid}" for oid in ds.orders)):
        found.append("Redis")
    r.close()
    audit = REPO / settings.store("audit").log_path  # relative to where `scripts/run` runs
    if audit.exists() and any(c.encode() in audit.read_bytes() for c in ds.customers):
        found.append(str(audit))
    return found


def test_the_suite_leaves_the_product_data_alone(processes, settings, tmp_path):
    ds = build_dataset(20, 10, 30)
    tag = next(iter(ds.books)).split("-")[0]  # in every book, every order and every bad record
    live = product()
    before = ends(live)
    pipeline = Pipeline(processes, settings, tmp_path)
    pipeline.start_workers()
    pipeline.start_bridge()
    coords = produce(settings, ds.messages)
    stores = Stores(settings)
    try:
        wait_until(lambda: stores.complete(ds), 120, "the suite's records in its stores")
    finally:
        stores.close()
    coords |= produce(settings, ds.bad_messages)
    pipeline.wait_audited(coords)
    assert set(dead_letters(settings, set(ds.malformed))) == set(ds.malformed)

    # the checks find what the suite wrote where it wrote it ...
    assert topics(settings).dead_letters in written_since(settings, {}, tag)
    assert stored(settings, ds)[:3] == ["PostgreSQL", "MongoDB", "Redis"]
    # ... and none of it where the product keeps its data
    assert written_since(live, before, tag) == []
    assert stored(live, ds) == []
