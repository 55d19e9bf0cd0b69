"""The log is the source of truth: stores rebuilt from Kafka equal the live ones, and `verify`
proves a store equal to the log or names exactly what differs.

The suite's topics are recreated for this module: `verify` compares a store with the whole log,
which must then hold only this module's records (other suites share the topics). They keep every
record, as by default, until the compaction tests, last, turn compaction on (TOPIC_COMPACTION):
the log cleaner then goes on removing superseded records, so two rebuilds after it may read
different counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pymongo
import pytest
import redis
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource

from bookstore.kafka import read_topics
from bookstore.namespace import Namespace
from bookstore.stores.postgres import SCHEMA
from bookstore.topic_config import topic_configs
from tests.integration.pipeline import (
    Dataset,
    Pipeline,
    Stores,
    Stream,
    build_dataset,
    produce_each,
    recreate_topics,
)
from tests.support import (
    BOOKS,
    CUSTOMERS,
    DEAD_LETTERS,
    REPO,
    TABLE,
    Processes,
    run,
    wait_drained,
    wait_until,
)

LIVE = Namespace("bookstore_truth", {"redis_db": 10})
REBUILT = ("truth_rebuilt", "11")
COMPACTED = ("truth_compacted", "12")


@dataclass
class Truth:
    pipeline: Pipeline
    ds: Dataset
    processes: Processes


@pytest.fixture(scope="module")
def truth(settings, tmp_path_factory) -> Iterator[Truth]:
    """A messy stream through the pipeline into the live namespace: duplicates, updates (a
    customer's e-mail and name changed several times, a book re-published), dead letters of
    every stage, and a worker killed mid-stream."""
    recreate_topics(settings)
    LIVE.reset(settings)
    tmp = tmp_path_factory.mktemp("truth")
    processes = Processes(tmp)
    pipeline = Pipeline(processes, settings, tmp, **LIVE.env(settings), BRIDGE_BATCH_SIZE="50")
    tag = uuid.uuid4().hex[:8]
    ds = build_dataset(150, 60, 400, tag)
    changing = list(ds.customers.values())[1]  # not the first: its e-mail is the conflict's
    for i in range(4):  # the latest version wins; the e-mails it leaves are free again
        changing = {**changing, "name": f"Nome {i}", "email": f"v{i}.{tag}@example.org"}
        ds.send(CUSTOMERS, changing, changing["id"])
    ds.customers[changing["id"]] = changing
    book = next(iter(ds.books.values()))
    republished = {**book, "title": f"{book['title']} (2nd edition)"}
    ds.send(BOOKS, republished, book["id"])
    ds.books[book["id"]] = republished
    try:
        pipeline.start_workers()
        pipeline.start_bridge()
        stream = Stream(settings, ds.messages, per_second=400).start()
        wait_until(lambda: len(pipeline.audit_coords()) > 200, 120, "the stream under way")
        processes.stop(pipeline.workers["postgres"], signal.SIGKILL)
        pipeline.workers["postgres"] = processes.worker("postgres", env=pipeline.env)
        coords = stream.finish()
        stores = Stores(LIVE.settings(settings))
        try:
            wait_until(lambda: stores.complete(ds), 240, "every valid record stored")
        finally:
            stores.close()
        coords += produce_each(settings, ds.bad_messages)  # the e-mail conflict comes second
        pipeline.wait_audited(coords)
        wait_until(lambda: pipeline.lag() == 0, 120, "the bridge group's lag to be 0")
        wait_until(lambda: _dead_letter_count(settings) >= len(ds.malformed), 120, "dead letters")
        wait_drained(TABLE.bridge_queues)  # every task done and acked
        yield Truth(pipeline, ds, processes)
    finally:
        processes.stop_all()


def _dead_letter_count(settings) -> int:
    return sum(len(b) for b in read_topics(settings, [DEAD_LETTERS]))


def _verify(truth: Truth, *args: str) -> dict:
    result = truth.pipeline.cli("verify", "--json", *args)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def _by_store(report: dict) -> dict[str, dict]:
    return {s["store"]: s for s in report["stores"]}


def _rebuild_into(truth: Truth, namespace: tuple[str, str], *args: str) -> list[dict]:
    name, redis_db = namespace
    result = truth.pipeline.cli("rebuild", "--into", name, "--redis-db", redis_db, "--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_live_and_rebuilt_stores_equal_the_log(truth):
    live = _verify(truth)
    assert live["differences"] == 0, live
    assert _by_store(live)["postgres"]["checked"] == len(truth.ds.customers)
    assert _by_store(live)["redis"]["checked"] == len(truth.ds.orders)

    summaries = {s["store"]: s for s in _rebuild_into(truth, REBUILT)}
    assert summaries["postgres"]["stored"] >= len(truth.ds.customers)
    assert summaries["postgres"]["dead_letters"] > 0  # the malformed customers, judged again
    rebuilt = _verify(truth, "--namespace", REBUILT[0], "--redis-db", REBUILT[1])
    assert rebuilt["differences"] == 0, rebuilt
    for store in ("postgres", "mongo", "redis", "audit"):
        assert _by_store(rebuilt)[store]["checked"] == _by_store(live)[store]["expected"]

    again = _rebuild_into(truth, REBUILT)  # resumes from its progress: nothing new to read
    assert all(s["resumed"] and s["read"] == 0 for s in again), again


def test_verify_names_exactly_what_was_tampered_with(truth, settings):
    _rebuild_into(truth, REBUILT)
    name, redis_db = REBUILT
    target = _namespace(settings, REBUILT)
    customer, book = next(iter(truth.ds.customers)), next(iter(truth.ds.books))
    order, deleted = list(truth.ds.orders)[:2]
    stray = str(uuid.uuid4())
    with psycopg2.connect(target.store("postgres").dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE customers SET name = 'tampered' WHERE id = %s", (customer,))
    conn.close()
    client = pymongo.MongoClient(target.store("mongo").uri)
    client[name].books.update_one({"_id": book}, {"$set": {"title": "tampered"}})
    client.close()
    r = redis.Redis.from_url(target.store("redis").url)
    r.hset(f"order:{order}", "quantity", 999)
    owner = r.hget(f"order:{deleted}", "customer_id").decode()
    r.delete(f"order:{deleted}")
    r.zrem(f"customer:{owner}:orders", deleted)
    r.srem("orders", deleted)
    r.hset(
        f"order:{stray}",
        mapping={"customer_id": owner, "book_id": book, "quantity": 1, "timestamp": "x"},
    )
    r.zadd(f"customer:{owner}:orders", {stray: 1})
    r.sadd("orders", stray)
    r.close()

    report = _verify(truth, "--namespace", name, "--redis-db", redis_db, "--examples", "10")
    stores = _by_store(report)
    counts = {s: (v["missing"], v["extra"], v["different"]) for s, v in stores.items()}
    assert counts == {
        "postgres": (0, 0, 1),
        "mongo": (0, 0, 1),
        "redis": (1, 1, 1),
        "audit": (0, 0, 0),
    }, report
    examples = " ".join(e for s in stores.values() for e in s["examples"])
    for key in (customer, book, order, deleted, stray):
        assert key in examples
    assert report["differences"] == 5
    result = truth.pipeline.cli("verify", "--namespace", name, "--redis-db", redis_db)
    assert result.returncode == 1 and "5 difference(s)" in result.stdout, result.stdout


def _force_compaction(settings) -> None:
    """Let the broker compact the entity topics now (their lag is days by default)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    fast = {
        "min.compaction.lag.ms": "0",
        "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    }
    try:
        admin.alter_configs([ConfigResource("TOPIC", t, configs=fast) for t in (CUSTOMERS, BOOKS)])
    finally:
        admin.close()


def _versions(settings, topic: str, key: bytes) -> int:
    return sum(1 for batch in read_topics(settings, [topic]) for r in batch if r.key == key)


def _versions_sent(ds: Dataset, topic: str) -> int:
    return sum(1 for t, _, _ in ds.messages + ds.bad_messages if t == topic)


def _namespace(settings, namespace: tuple[str, str]):
    name, redis_db = namespace
    return Namespace(name, {"redis_db": int(redis_db)}).settings(LIVE.settings(settings))


def _redis(settings, namespace: tuple[str, str]) -> redis.Redis:
    return redis.Redis.from_url(_namespace(settings, namespace).store("redis").url)


def test_a_rebuild_killed_midway_resumes_where_it_stopped(truth, settings):
    """Killed (-9) between two batches, the same command goes on from the progress the store
    kept. Its PostgreSQL is made slow (a trigger sleeps 20 ms a row), so that the kill lands in
    the middle whatever the machine's speed."""
    name = "truth_resumed"
    target = _namespace(settings, (name, "13")).store("postgres").dsn
    Namespace(name).create(LIVE.settings(settings), ["postgres"])
    with psycopg2.connect(target) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute("TRUNCATE customers, rebuild_progress")
        cur.execute(
            """CREATE OR REPLACE FUNCTION slow() RETURNS trigger AS $$
               BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$ LANGUAGE plpgsql;
               CREATE OR REPLACE TRIGGER slow BEFORE INSERT OR UPDATE ON customers
                 FOR EACH ROW EXECUTE FUNCTION slow();"""
        )
    conn.close()

    def progressed() -> bool:
        with psycopg2.connect(target) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM rebuild_progress")
            return cur.fetchone()[0] > 0

    env = {**os.environ, **truth.pipeline.env, "BRIDGE_BATCH_SIZE": "5"}  # many small batches
    args = ["rebuild", "--into", name, "--store", "postgres", "--json"]
    first = subprocess.Popen([sys.executable, "-m", "bookstore", *args], cwd=REPO, env=env)
    wait_until(progressed, 60, "a first batch's progress in the store")
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    result = run("-m", "bookstore", *args, env=env)
    assert result.returncode == 0, result.stderr
    [summary] = json.loads(result.stdout)
    on_the_topic = sum(len(batch) for batch in read_topics(settings, [CUSTOMERS]))
    assert summary["resumed"] and 0 < summary["read"] < on_the_topic, (summary, on_the_topic)
    report = _verify(truth, "--namespace", name, "--store", "postgres")
    assert report["differences"] == 0, report


def _orders(truth: Truth) -> int:
    return len(truth.ds.orders)


def test_a_rebuild_into_another_redis_database_stores_everything(truth, settings):
    """The progress is the target's: the same namespace name on another Redis database is
    another target, read from the first offset."""
    name = "truth_moved"
    for db in ("13", "11"):
        _redis(settings, (name, db)).flushdb()
    [first] = _rebuild_into(truth, (name, "13"), "--store", "redis")
    [moved] = _rebuild_into(truth, (name, "11"), "--store", "redis")
    assert not moved["resumed"] and moved["stored"] == first["stored"] >= _orders(truth), moved
    report = _verify(truth, "--namespace", name, "--redis-db", "11", "--store", "redis")
    assert report["differences"] == 0, report


def test_a_rebuild_into_a_dropped_namespace_starts_from_the_first_offset(truth, settings):
    """A namespace whose databases were dropped (and whose audit file was removed) holds no
    progress: the same command rebuilds every store whole again."""
    namespace = ("truth_dropped", "13")
    _redis(settings, namespace).flushdb()
    first = {s["store"]: s for s in _rebuild_into(truth, namespace)}
    target = _namespace(settings, namespace)
    admin = psycopg2.connect(target.store("postgres").dsn.rsplit("/", 1)[0] + "/bookstore")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{namespace[0]}"')
    admin.close()
    client = pymongo.MongoClient(target.store("mongo").uri)
    client.drop_database(namespace[0])
    client.close()
    _redis(settings, namespace).flushdb()
    os.remove(target.store("audit").log_path)
    again = {s["store"]: s for s in _rebuild_into(truth, namespace)}
    for store, summary in again.items():
        assert not summary["resumed"], summary
        assert summary["stored"] == first[store]["stored"] > 0, (store, summary, first[store])
    report = _verify(truth, "--namespace", namespace[0], "--redis-db", namespace[1])
    assert report["differences"] == 0, report


def test_the_live_stores_and_a_namespace_called_live_do_not_share_progress(truth, settings):
    """`--yes` rebuilds the live stores; `--into live` a namespace that happens to be called
    so: each its own target, each its own progress."""
    yes = truth.pipeline.cli("rebuild", "--yes", "--store", "redis", "--json")
    assert yes.returncode == 0, yes.stdout + yes.stderr
    [in_place] = json.loads(yes.stdout)
    assert _verify(truth, "--store", "redis")["differences"] == 0
    namespace = ("live", "13")
    _redis(settings, namespace).flushdb()
    [into] = _rebuild_into(truth, namespace, "--store", "redis")
    assert not into["resumed"] and into["stored"] == in_place["stored"] >= _orders(truth), into
    report = _verify(truth, "--namespace", "live", "--redis-db", "13", "--store", "redis")
    assert report["differences"] == 0, report


def test_replacing_the_live_audit_log_keeps_the_old_one_aside(truth):
    before = truth.pipeline.audit_path.read_bytes()
    result = truth.pipeline.cli("rebuild", "--yes", "--store", "audit", "--json")
    assert result.returncode == 0, result.stderr
    audit = truth.pipeline.audit_path
    [kept] = audit.parent.glob(f"{audit.name}.before-rebuild-*")
    assert kept.read_bytes() == before
    assert _verify(truth, "--store", "audit")["differences"] == 0


def test_a_rebuild_after_compaction_gives_identical_stores(truth, settings):
    """Compaction turned on by the operator (TOPIC_COMPACTION, `topics --apply`): refused while
    records without a key would be discarded, then forced; the log still rebuilds the stores."""
    key = list(truth.ds.customers)[1].encode()  # the customer whose e-mail changed
    sent = sum(1 for t, k, _ in truth.ds.messages if (t, k) == (CUSTOMERS, key))
    assert sent == 5 and _versions(settings, CUSTOMERS, key) == sent
    assert topic_configs(settings)[CUSTOMERS]["cleanup.policy"] == "delete"  # the default
    truth.pipeline.env["TOPIC_COMPACTION"] = "true"  # from now on, for every command
    refused = truth.pipeline.cli("topics", "--apply")
    assert refused.returncode == 1 and "without a key" in refused.stderr, refused.stderr
    forced = truth.pipeline.cli("topics", "--apply", "--force", "--json")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert json.loads(forced.stdout)["applied"][CUSTOMERS]["cleanup.policy"] == "compact"
    _force_compaction(settings)
    rolls = []

    def compacted() -> bool:  # a record more rolls the segment that holds the old versions
        for partition in range(settings.kafka_partitions):
            rolls.extend(
                produce_each(
                    settings, [(CUSTOMERS, b"roll", b"{x"), (BOOKS, b"roll", b"{x")], partition
                )
            )
        return _versions(settings, CUSTOMERS, key) == 1

    wait_until(compacted, 120, "the log cleaner to compact customers", every=2)
    truth.pipeline.wait_audited(rolls)
    wait_until(lambda: truth.pipeline.lag() == 0, 120, "the bridge group's lag to be 0")

    summaries = {s["store"]: s for s in _rebuild_into(truth, COMPACTED)}
    assert summaries["postgres"]["read"] < _versions_sent(truth.ds, CUSTOMERS) + len(rolls) // 2
    rebuilt = _verify(truth, "--namespace", COMPACTED[0], "--redis-db", COMPACTED[1])
    assert rebuilt["differences"] == 0, rebuilt
    live = _verify(truth)  # the live audit log holds lines compaction removed: legitimate
    assert live["differences"] == 0, live

    live_stores = Stores(LIVE.settings(settings))
    rebuilt_stores = Stores(_namespace(settings, COMPACTED))
    try:
        assert rebuilt_stores.snapshot(truth.ds) == live_stores.snapshot(truth.ds)
    finally:
        live_stores.close()
        rebuilt_stores.close()


def test_check_counts_only_offsets_that_hold_a_record(truth, settings):
    """After compaction the topics have offsets that hold no record: `check` is consistent with
    the live audit log and with one started after the compaction (rebuilt from the log)."""
    assert truth.pipeline.check()["ok"] is True
    _rebuild_into(truth, COMPACTED)  # its audit log: only what the compacted topics hold
    after = Path(_namespace(settings, COMPACTED).store("audit").log_path)
    audited: dict[int, set[int]] = {}
    for line in map(json.loads, after.read_text().splitlines()):
        if line["topic"] == CUSTOMERS:
            audited.setdefault(line["partition"], set()).add(line["offset"])
    gaps = sum(max(s) + 1 - min(s) - len(s) for s in audited.values())
    assert gaps > 0, "compaction left no offset without a record to judge"
    result = truth.pipeline.cli("check", "--json", AUDIT_LOG_PATH=str(after))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sum(p["missing"] for p in json.loads(result.stdout)["audit"]["partitions"]) == 0
