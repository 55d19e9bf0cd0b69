"""The operator CLI (`python -m bookstore ...`) as a real process against real servers.

Known data is written straight into the stores, following docs/contracts.md. The CLI scans whole
stores (`check`, `stats`), so these tests use namespaces of their own that other tests never
write to: PostgreSQL database bookstore_cli_test, MongoDB database bookstore_cli_test, Redis db 5,
a fresh consumer group and audit log per test. Server outages are simulated with closed ports.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pymongo
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bookstore import entities
from bookstore.config import Settings, load_settings
from bookstore.entities import PARKED_QUEUE, topics
from bookstore.kafka import commit_group_offsets, offsets
from bookstore.namespace import Namespace
from bookstore.stores.postgres import SCHEMA
from bookstore.stores.redis_orders import ALL_ORDERS, history_key, order_key
from bookstore.topic_config import ensure_topics
from tests.support import (
    BOOKS,
    CUSTOMERS,
    DEAD_LETTERS,
    ORDERS,
    TABLE,
    run,
    wait_until,
)

NS = Namespace("bookstore_cli_test", {"redis_db": 5})
CLOSED = "127.0.0.1:1"  # nothing listens there: a server that is down

ALICE = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
NOBODY = "33333333-3333-4333-8333-333333333333"
SAMPLE_BOOKS = {
    "vol-dune": {"isbn": "9780441013593", "title": "Dune", "authors": ["Frank Herbert"]},
    "vol-sus": {"isbn": None, "title": "Sussurros", "authors": ["A. Autora", "B. Autor"]},
}
# (order id, customer, book, quantity, epoch seconds)
SAMPLE_ORDERS = [
    ("aaaaaaaa-0000-4000-8000-000000000001", ALICE, "vol-dune", 1, 1_700_000_000),
    ("aaaaaaaa-0000-4000-8000-000000000002", ALICE, "vol-sus", 2, 1_700_000_500),
    ("aaaaaaaa-0000-4000-8000-000000000003", ALICE, "vol-dune", 3, 1_700_000_100),
    ("aaaaaaaa-0000-4000-8000-000000000004", BOB, "vol-sus", 1, 1_700_000_200),
]


@pytest.fixture(scope="module")
def mine(settings) -> Settings:
    """The CLI tests' own stores, emptied once (each test's data is written by `env`)."""
    return NS.reset(settings)


def add_order(r: redis.Redis, oid: str, cid: str, book: str, qty: int, epoch: int) -> None:
    iso = f"{datetime.fromtimestamp(epoch, tz=UTC):%Y-%m-%dT%H:%M:%SZ}"
    r.hset(
        order_key(oid),
        mapping={"customer_id": cid, "book_id": book, "quantity": qty, "timestamp": iso},
    )
    r.zadd(history_key(cid), {oid: epoch})
    r.sadd(ALL_ORDERS, oid)


@pytest.fixture
def env(settings, mine, tmp_path: Path) -> dict[str, str]:
    """Fresh known data in the CLI's own namespace; the environment to run the CLI with."""
    with psycopg2.connect(mine.store("postgres").dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute("TRUNCATE customers")
        cur.execute(
            "INSERT INTO customers (id, name, email) VALUES (%s, %s, %s), (%s, %s, %s)",
            (ALICE, "Alice Souza", "alice@example.com", BOB, "Bob Lima", "bob@example.org"),
        )
    conn.close()
    mongo = pymongo.MongoClient(mine.store("mongo").uri, serverSelectionTimeoutMS=10_000)
    books = mongo[mine.store("mongo").db].books
    books.drop()
    books.insert_many([{"_id": bid, **doc} for bid, doc in SAMPLE_BOOKS.items()])
    mongo.close()
    r = redis.Redis.from_url(mine.store("redis").url)
    r.flushdb()
    for order in SAMPLE_ORDERS:
        add_order(r, *order)
    r.close()
    audit = tmp_path / "messages.log"
    audit.write_text("")
    return {
        **NS.env(settings),
        "AUDIT_LOG_PATH": str(audit),
        "BRIDGE_GROUP_ID": f"cli-test-{uuid.uuid4().hex[:8]}",
    }


def cli(env: dict[str, str], *args: str, **overrides: str) -> subprocess.CompletedProcess:
    return run("-m", "bookstore", *args, env={**env, **overrides}, timeout=180)


def assert_clean_failure(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Non-zero exit, one clear line on stderr, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(
        line.startswith(("error:", "Usage:", "Try", "╭", "│", "╰")) for line in lines
    )
    for word in words:
        assert word in result.stderr, result.stderr


# --- history -----------------------------------------------------------------------------------


def test_history_joins_the_three_stores_newest_first(env):
    result = cli(env, "history", ALICE, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["customer"] == {"id": ALICE, "name": "Alice Souza", "email": "alice@example.com"}
    assert [o["id"][-1] for o in data["orders"]] == ["2", "3", "1"]  # by timestamp, newest first
    first = data["orders"][0]
    assert first["quantity"] == 2 and first["timestamp"] == "2023-11-14T22:21:40Z"
    assert first["book"] == {"title": "Sussurros", "authors": ["A. Autora", "B. Autor"]}

    table = cli(env, "history", ALICE)
    assert table.returncode == 0
    assert "Alice Souza" in table.stdout and "Dune" in table.stdout
    assert table.stdout.index("Sussurros") < table.stdout.index("Dune")


def test_history_shows_orders_whose_book_is_not_stored_yet(env):
    add_order(
        redis.Redis.from_url(env["REDIS_URL"]),
        str(uuid.uuid4()),
        BOB,
        "vol-gone",
        1,
        1_800_000_000,
    )
    data = json.loads(cli(env, "history", BOB, "--json").stdout)
    assert data["orders"][0]["book_id"] == "vol-gone" and data["orders"][0]["book"] is None


def test_history_of_an_unknown_customer_fails_clearly(env):
    assert_clean_failure(cli(env, "history", NOBODY), 3, "unknown customer", NOBODY)
    assert_clean_failure(cli(env, "history", "not-a-uuid"), 2)


@pytest.mark.parametrize(
    ("variable", "value", "server"),
    [
        ("POSTGRES_DSN", f"postgresql://bookstore:bookstore@{CLOSED}/nowhere", "PostgreSQL"),
        ("REDIS_URL", f"redis://{CLOSED}/5", "Redis"),
        ("MONGO_URI", f"mongodb://{CLOSED}", "MongoDB"),
    ],
)
def test_history_with_a_server_down_fails_clearly(env, variable, value, server):
    result = cli(env, "history", ALICE, **{variable: value})
    assert_clean_failure(result, 4, server)
    assert "bookstore:bookstore" not in result.stderr  # never echo credentials


# --- stats -------------------------------------------------------------------------------------


def first_offset(tp: TopicPartition) -> int:
    return offsets(load_settings(), [tp.topic])[0][tp]


def test_stats_counts_every_store_lag_and_queues(env, tmp_path):
    ensure_topics(load_settings())
    Path(env["AUDIT_LOG_PATH"]).write_text('{"a":1}\n{"a":2}\n\n{"a":3}\n')
    tp = TopicPartition(CUSTOMERS, 0)
    begin = first_offset(tp)
    commit_group_offsets(load_settings(), env["BRIDGE_GROUP_ID"], {tp: begin})

    result = cli(env, "stats", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["customers"], data["books"], data["orders"]) == (2, 2, 4)
    assert data["audit_lines"] == 3
    assert isinstance(data["dead_letters"], int) and data["errors"] == {}
    lag = {(p["topic"], p["partition"]): p for p in data["lag"]}
    assert {t for t, _ in lag} == {CUSTOMERS, BOOKS, ORDERS}
    assert lag[(CUSTOMERS, 0)]["committed"] == begin
    assert lag[(CUSTOMERS, 0)]["lag"] == lag[(CUSTOMERS, 0)]["end"] - begin
    assert lag[(BOOKS, 0)]["committed"] is None  # never consumed by this group
    assert set(data["queues"]) == {*TABLE.celery_queues, PARKED_QUEUE}

    table = cli(env, "stats")
    assert table.returncode == 0
    assert "customers (PostgreSQL)" in table.stdout and "Consumer lag" in table.stdout


@pytest.mark.parametrize(
    ("variable", "value", "section", "server"),
    [
        ("REDIS_URL", f"redis://{CLOSED}/5", "orders", "Redis"),
        ("CELERY_BROKER_URL", f"amqp://guest:guest@{CLOSED}//", "queues", "RabbitMQ"),
        ("KAFKA_BOOTSTRAP_SERVERS", CLOSED, "lag", "Kafka"),
    ],
)
def test_stats_with_a_server_down_reports_the_rest_and_fails(env, variable, value, section, server):
    result = cli(env, "stats", "--json", **{variable: value})
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert server in result.stderr
    data = json.loads(result.stdout)
    assert server in data["errors"][section]
    assert data["customers"] == 2  # what could be read is still shown


# --- check -------------------------------------------------------------------------------------


def test_check_passes_on_consistent_stores(env):
    result = cli(env, "check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["orders_checked"] == 4


def test_check_finds_orders_without_customer_or_book(env):
    r = redis.Redis.from_url(env["REDIS_URL"])
    orphan, bookless = str(uuid.uuid4()), str(uuid.uuid4())
    add_order(r, orphan, NOBODY, "vol-dune", 1, 1_700_000_000)
    add_order(r, bookless, ALICE, "vol-missing", 1, 1_700_000_000)

    result = cli(env, "check", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["orders_without_customer"] == {"count": 1, "examples": [orphan]}
    assert data["orders_without_book"] == {"count": 1, "examples": [bookless]}
    table = cli(env, "check")
    assert table.returncode == 1 and "INCONSISTENT" in table.stdout


def test_check_finds_committed_records_missing_from_the_audit_log(env):
    settings = load_settings()
    ensure_topics(settings)
    tp = TopicPartition(BOOKS, 1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    sent = [producer.send(BOOKS, b"{}", partition=1) for _ in range(3)]
    begin = sent[0].get(timeout=60).offset  # three records: begin, begin + 1, begin + 2
    assert sent[2].get(timeout=60).offset == begin + 2
    producer.close()
    audit = Path(env["AUDIT_LOG_PATH"])
    line = {"topic": BOOKS, "partition": 1, "key": None, "timestamp": 0, "value": "{}"}
    audit.write_text(
        "".join(json.dumps({**line, "offset": o}) + "\n" for o in (begin, begin + 2, begin + 2))
    )
    commit_group_offsets(load_settings(), env["BRIDGE_GROUP_ID"], {tp: begin + 3})

    data = json.loads(cli(env, "check", "--json").stdout)
    assert data["ok"] is False
    assert data["audit"]["partitions"] == [
        {
            "topic": BOOKS,
            "partition": 1,
            "committed": begin + 3,
            "before_log": begin - first_offset(tp),
            "missing": 1,
            "examples": [begin + 1],
        }
    ]
    assert data["audit"]["audit_duplicates"] == 1  # tolerated, reported

    audit.write_text(audit.read_text() + json.dumps({**line, "offset": begin + 1}) + "\n")
    assert cli(env, "check").returncode == 0

    # a rotated audit log: what precedes its first line is counted apart, not as missing
    audit.write_text(json.dumps({**line, "offset": begin + 2}) + "\n")
    data = json.loads(cli(env, "check", "--json").stdout)
    assert data["ok"] is True
    assert data["audit"]["partitions"][0]["before_log"] == begin + 2 - first_offset(tp)


def test_check_with_a_server_down_fails_clearly(env):
    assert_clean_failure(
        cli(env, "check", POSTGRES_DSN=f"postgresql://bookstore:bookstore@{CLOSED}/nowhere"),
        4,
        "PostgreSQL",
    )


# --- dead letters ------------------------------------------------------------------------------


def dead_letter(
    value: bytes, key: bytes | None, reason: str, settings: Settings | None = None
) -> tuple[int, int]:
    """A dead letter from customers[0]@7, written to the dead-letter topic of `settings`."""
    settings = settings or load_settings()
    ensure_topics(settings)
    names = topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    headers = [
        ("origin.topic", names.of(entities.CUSTOMERS).encode()),
        ("origin.partition", b"0"),
        ("origin.offset", b"7"),
        ("error.stage", b"store"),
        ("error.reason", reason.encode()),
    ]
    md = producer.send(names.dead_letters, key=key, value=value, headers=headers).get(timeout=60)
    producer.close()
    return md.partition, md.offset


def test_dead_letters_list_shows_origin_stage_reason_and_raw_value(env):
    marker = uuid.uuid4().hex
    value = json.dumps({"id": str(uuid.uuid4()), "name": "X", "email": f"{marker}@example.com"})
    partition, offset = dead_letter(value.encode(), b"k1", f"e-mail taken {marker}")

    result = cli(env, "dead-letters", "list", "--json", "--stage", "store")
    assert result.returncode == 0, result.stderr
    mine = [d for d in json.loads(result.stdout) if marker in d["headers"]["error.reason"]]
    assert len(mine) == 1
    assert (mine[0]["partition"], mine[0]["offset"]) == (partition, offset)
    assert mine[0]["value"] == value and mine[0]["key"] == "k1"
    assert mine[0]["headers"]["origin.topic"] == CUSTOMERS

    table = cli(env, "dead-letters", "list")
    assert table.returncode == 0 and f"{CUSTOMERS}[0]@7" in table.stdout


def test_dead_letters_replay_republishes_the_raw_record_to_its_origin(env):
    marker = uuid.uuid4().hex
    value = json.dumps({"id": str(uuid.uuid4()), "name": "Y", "email": f"{marker}@example.net"})
    key = marker.encode()
    partition, offset = dead_letter(value.encode(), key, "fixed since")
    settings = load_settings()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    tps = [TopicPartition(CUSTOMERS, p) for p in consumer.partitions_for_topic(CUSTOMERS)]
    consumer.assign(tps)
    consumer.seek_to_end()
    for tp in tps:
        consumer.position(tp)  # resolve "end" now, before the replay

    dry = cli(env, "dead-letters", "replay", "--at", f"{partition}:{offset}", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["dry_run"] is True
    result = cli(env, "dead-letters", "replay", "--at", f"{partition}:{offset}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["replayed"] == [
        {"dead_letter": f"{partition}:{offset}", "to": CUSTOMERS, "key": marker}
    ]

    seen: list = []

    def replayed():
        for records in consumer.poll(1000).values():
            seen.extend(r for r in records if r.key == key)
        return seen

    wait_until(replayed, 60, "the replayed record on the customers topic")
    consumer.close()
    assert len(seen) == 1 and seen[0].value == value.encode()  # raw bytes, unchanged
    assert ("replayed.from", f"{DEAD_LETTERS}[{partition}]@{offset}".encode()) in seen[0].headers


def test_dead_letters_replay_refuses_unknown_ids_and_needs_a_selection(env):
    assert_clean_failure(cli(env, "dead-letters", "replay", "--at", "0:999999999"), 3, "no such")
    assert_clean_failure(cli(env, "dead-letters", "replay"), 2)
    assert_clean_failure(cli(env, "dead-letters", "replay", "--at", "zero"), 2)


def test_a_keyless_dead_letter_of_a_compacted_topic_is_not_replayed(env):
    """Kafka refuses a record without a key on a compacted topic: said before sending. (A
    deployment of its own, with TOPIC_COMPACTION on.)"""
    compacting = {"KAFKA_TOPIC_PREFIX": "test.compacted.", "TOPIC_COMPACTION": "true"}
    settings = load_settings().replace(kafka_topic_prefix="test.compacted.", topic_compaction=True)
    partition, offset = dead_letter(b"{}", None, "no key", settings)
    result = cli(env, "dead-letters", "replay", "--at", f"{partition}:{offset}", **compacting)
    assert_clean_failure(result, 2, "no key", "compacted")


def test_a_keyless_dead_letter_is_replayed_by_default(env):
    """Topics keep records without a key by default (the original producers send none)."""
    partition, offset = dead_letter(b"{}", None, "no key")
    result = cli(env, "dead-letters", "replay", "--at", f"{partition}:{offset}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["replayed"][0]["key"] is None


def test_dead_letters_with_kafka_down_fail_clearly(env):
    result = cli(env, "dead-letters", "list", KAFKA_BOOTSTRAP_SERVERS=CLOSED)
    assert_clean_failure(result, 4, "Kafka", CLOSED)
