"""Test support for the pipeline: a dataset in the original format (valid, duplicated and
malformed records), a producer that remembers coordinates, and a running pipeline whose consumer
group starts at the current end of the topics (the topics are shared with other tests)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pymongo
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from bookstore.config import Settings
from bookstore.kafka import ensure_topics
from bookstore.topics import BOOKS, CUSTOMERS, DEAD_LETTERS, ENTITY_TOPICS, ORDERS
from tests.conftest import Processes, wait_until

Coord = tuple[str, int, int]
ORDER_FIELDS = ("customer_id", "book_id", "quantity", "timestamp")


@dataclass
class Dataset:
    """What was sent, and what the stores and the dead-letter topic must end up holding."""

    messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    # sent after the valid ones are stored (the e-mail conflict must come second)
    bad_messages: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    customers: dict[str, dict] = field(default_factory=dict)
    books: dict[str, dict] = field(default_factory=dict)
    orders: dict[str, dict] = field(default_factory=dict)
    malformed: dict[bytes, str] = field(default_factory=dict)  # raw value -> expected stage

    def send(self, topic: str, value: dict | bytes, key: str | None = None) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.messages.append((topic, key.encode() if key else None, raw))


def build_dataset(n_customers: int, n_books: int, n_orders: int, tag: str = "") -> Dataset:
    tag = tag or uuid.uuid4().hex[:8]
    ds = Dataset()
    for i in range(n_customers):
        c = {
            "id": str(uuid.uuid4()),
            "name": f"Cliente {i} ção",
            "email": f"c{i}.{tag}@example.com",
        }
        ds.customers[c["id"]] = c
        ds.send(CUSTOMERS, c, c["id"])
    for i in range(n_books):
        b = {
            "id": f"{tag}-vol{i}",
            "isbn": f"978{i:010d}" if i % 3 else None,
            "title": f"Livro {i}",
            "authors": [f"Autor {i}"] if i % 4 else [],
            "publishedDate": ["2004", "2004-05", "2004-05-12", None][i % 4],
        }
        ds.books[b["id"]] = b
        ds.send(BOOKS, b, b["id"])
    customer_ids, book_ids = list(ds.customers), list(ds.books)
    for i in range(n_orders):
        o = {
            "id": str(uuid.uuid4()),
            "customer_id": customer_ids[i % len(customer_ids)],
            "book_id": book_ids[i % len(book_ids)],
            "quantity": 1 + i % 5,
            "timestamp": 1_700_000_000 + i if i % 2 else f"2024-05-01T10:{i % 60:02d}:00",
        }
        ds.orders[o["id"]] = o
        ds.send(ORDERS, o, o["id"])
    # duplicates: every 10th valid message again (the stores must not change)
    ds.messages.extend(ds.messages[::10])
    malformed = [
        (CUSTOMERS, f"{{not json {tag}".encode(), "decode"),
        (CUSTOMERS, b"\xff\xfe" + tag.encode(), "decode"),
        (CUSTOMERS, {"id": "not-a-uuid", "name": "x", "email": f"x.{tag}@example.com"}, "validate"),
        (CUSTOMERS, {"id": str(uuid.uuid4()), "name": tag}, "validate"),  # no email
        (CUSTOMERS, [tag], "validate"),
        (BOOKS, {"id": f"{tag}-bad", "title": {"text": tag}, "authors": []}, "validate"),
        (BOOKS, {"id": f"{tag}-bad2", "title": tag, "authors": "one author"}, "validate"),
        (
            ORDERS,
            {**next(iter(ds.orders.values())), "id": str(uuid.uuid4()), "quantity": 0, "tag": tag},
            "validate",
        ),
        (
            ORDERS,
            {
                **next(iter(ds.orders.values())),
                "id": str(uuid.uuid4()),
                "timestamp": "soon",
                "tag": tag,
            },
            "validate",
        ),
        # same e-mail as an existing customer, different id: an integrity violation
        (
            CUSTOMERS,
            {
                "id": str(uuid.uuid4()),
                "name": tag,
                "email": next(iter(ds.customers.values()))["email"].upper(),
            },
            "store",
        ),
    ]
    for topic, value, stage in malformed:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        ds.malformed[raw] = stage
        ds.bad_messages.append((topic, None, raw))
    return ds


def produce(settings: Settings, messages: list[tuple[str, bytes | None, bytes]]) -> set[Coord]:
    """Send with acks=all; return every record's (topic, partition, offset)."""
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5
    )
    futures = [producer.send(t, key=k, value=v) for t, k, v in messages]
    producer.flush()
    coords = set()
    for f in futures:
        md = f.get(timeout=60)
        coords.add((md.topic, md.partition, md.offset))
    producer.close()
    return coords


def start_group_at_end(settings: Settings, group: str) -> None:
    """Commit the current end offsets for a new group, so it sees only what comes next."""
    ensure_topics(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    tps = [TopicPartition(t, p) for t in ENTITY_TOPICS for p in consumer.partitions_for_topic(t)]
    ends = consumer.end_offsets(tps)
    consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ends.items()})
    consumer.close()


class Pipeline:
    """Workers per queue and a bridge, as real processes, on this test's audit log and group."""

    def __init__(self, processes: Processes, settings: Settings, tmp_path: Path, **env: str):
        self.processes = processes
        self.settings = settings
        self.audit_path = tmp_path / "messages.log"
        self.group = f"test-bridge-{uuid.uuid4().hex[:8]}"
        self.env = {"AUDIT_LOG_PATH": str(self.audit_path), "BRIDGE_GROUP_ID": self.group, **env}
        self.workers: dict[str, object] = {}
        start_group_at_end(settings, self.group)

    def start_workers(self, *queues: str) -> None:
        for q in queues or ("postgres", "mongo", "redis", "audit"):
            self.workers[q] = self.processes.worker(q, env=self.env)

    def start_bridge(self):
        self.bridge = self.processes.start("bridge", "-m", "bridge", env=self.env)
        return self.bridge

    def audit_coords(self) -> list[Coord]:
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text(encoding="utf-8").splitlines()
        return [(r["topic"], r["partition"], r["offset"]) for r in map(json.loads, lines)]

    def wait_audited(self, coords: set[Coord], timeout: float = 240) -> None:
        wait_until(
            lambda: coords <= set(self.audit_coords()),
            timeout,
            f"{len(coords)} records in the audit log",
        )


class Stores:
    """Read-only views of the test databases, as the SPEC's contracts describe them."""

    def __init__(self, settings: Settings):
        self.pg = psycopg2.connect(settings.postgres_dsn)
        self.pg.autocommit = True
        self.mongo = pymongo.MongoClient(settings.mongo_uri)[settings.mongo_db]
        self.redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    def customers(self, ids) -> dict[str, dict]:
        with self.pg.cursor() as cur:
            cur.execute(
                "SELECT id::text, name, email FROM customers WHERE id = ANY(%s::uuid[])",
                (list(ids),),
            )
            return {i: {"id": i, "name": n, "email": e} for i, n, e in cur.fetchall()}

    def books(self, ids) -> dict[str, dict]:
        """The documents as the SPEC describes them (without the record each came from)."""
        found = self.mongo.books.find({"_id": {"$in": list(ids)}}, {"_source": 0})
        return {d["_id"]: d for d in found}

    def orders(self, ids) -> dict[str, dict]:
        """The order hashes' SPEC fields (without the record each came from)."""
        pipe = self.redis.pipeline()
        for i in ids:
            pipe.hmget(f"order:{i}", ORDER_FIELDS)
        return {
            i: dict(zip(ORDER_FIELDS, values, strict=True))
            for i, values in zip(ids, pipe.execute(), strict=True)
            if values[0] is not None
        }

    def history(self, customer_id: str) -> list[str]:
        return self.redis.zrevrange(f"customer:{customer_id}:orders", 0, -1)

    def snapshot(self, ds: Dataset) -> tuple:
        return (
            self.customers(ds.customers),
            self.books(ds.books),
            self.orders(list(ds.orders)),
            {c: self.history(c) for c in ds.customers},
        )

    def complete(self, ds: Dataset) -> bool:
        return (
            len(self.customers(ds.customers)) == len(ds.customers)
            and len(self.books(ds.books)) == len(ds.books)
            and len(self.orders(list(ds.orders))) == len(ds.orders)
        )

    def close(self) -> None:
        self.pg.close()
        self.mongo.client.close()
        self.redis.close()


def dead_letters(settings: Settings, values: set[bytes], timeout: float = 120) -> dict[bytes, dict]:
    """Read the dead-letter topic from the start until every value in `values` was seen."""
    consumer = KafkaConsumer(
        DEAD_LETTERS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    found: dict[bytes, dict] = {}
    deadline = time.monotonic() + timeout
    while not values <= set(found) and time.monotonic() < deadline:
        for records in consumer.poll(1000).values():
            for r in records:
                if r.value in values:
                    found.setdefault(r.value, {k: v.decode() for k, v in r.headers})
                    found[r.value]["_count"] = found[r.value].get("_count", 0) + 1
    consumer.close()
    return found
