"""Test support for the pipeline: a dataset in the original format (valid, duplicated and
malformed records), a producer that remembers coordinates, and a running pipeline whose consumer
group starts at the current end of the topics (the topics are shared with other tests)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.errors
import pymongo
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bookstore.config import Settings
from bookstore.dead_letter_topic import Letter
from bookstore.entities import topics
from bookstore.kafka import (
    client_options,
    commit_group_offsets,
    group_offsets,
    offsets,
    security_options,
)
from bookstore.topic_config import ensure_topics
from tests.support import (
    BOOKS,
    CUSTOMERS,
    DEAD_LETTERS,
    ORDERS,
    TABLE,
    Processes,
    free_port,
    get_json,
    purge_task_queues,
    run,
    start_flower,
    total,
    try_scrape,
    wait_assigned,
    wait_until,
    worker_name,
)

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


Message = tuple[str, bytes | None, bytes | None]  # topic, key, value


def test_producer(settings: Settings) -> KafkaProducer:
    """Idempotent (a Kafka restart never doubles a record), quick to reconnect, able to send
    records as large as a topic accepts (1 MiB by default), bootstrapped from a broker that
    answers (one may be paused or cut off)."""
    return KafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=2 * 1024 * 1024,
        delivery_timeout_ms=300_000,
    )


def produce_each(
    settings: Settings, messages: list[Message], partition: int | None = None
) -> list[Coord]:
    """Send with acks=all (to one partition if given); every record's coordinates, in order."""
    producer = test_producer(settings)
    futures = [producer.send(t, key=k, value=v, partition=partition) for t, k, v in messages]
    producer.flush()
    coords = []
    for f in futures:
        md = f.get(timeout=60)
        coords.append((md.topic, md.partition, md.offset))
    producer.close()
    return coords


def produce(settings: Settings, messages: list[Message]) -> set[Coord]:
    return set(produce_each(settings, messages))


class Stream:
    """Sends messages from a background thread, `per_second` at most, so that a fault injected
    by the test meanwhile lands mid-stream; `finish()` sends the rest at once."""

    def __init__(self, settings: Settings, messages: list[Message], per_second: int = 200):
        self.messages = messages
        self.per_second = per_second
        self.producer = test_producer(settings)
        self.futures: list = []
        self.hurry = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def start(self) -> Stream:
        self.thread.start()
        return self

    def _send(self) -> None:
        chunk = max(1, self.per_second // 10)
        for start in range(0, len(self.messages), chunk):
            for topic, key, value in self.messages[start : start + chunk]:
                self.futures.append(self.producer.send(topic, key=key, value=value))
            self.hurry.wait(0.1)  # a tenth of a second per chunk, none once hurried

    @property
    def sent(self) -> int:
        return len(self.futures)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def finish(self, timeout: float = 300) -> list[Coord]:
        """Send what is left, wait for Kafka's acknowledgements; coordinates in message order."""
        self.hurry.set()
        self.thread.join(timeout)
        self.producer.flush(timeout)
        coords = []
        for f in self.futures:
            md = f.get(timeout=timeout)
            coords.append((md.topic, md.partition, md.offset))
        self.producer.close()
        return coords


def start_group_at_end(settings: Settings, group: str) -> None:
    """Commit the current end offsets for a new group, so it sees only what comes next."""
    ensure_topics(settings)
    commit_group_offsets(settings, group, offsets(settings, topics(settings).entities)[1])


def recreate_topics(settings: Settings) -> None:
    """Delete the topics of `settings`' prefix and create them again, empty: for suites whose
    whole-log commands (`verify`) must see only their own records."""
    names = set(topics(settings).all)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **security_options(settings)
    )
    try:
        existing = set(admin.list_topics()) & names
        if existing:
            admin.delete_topics(sorted(existing))
        wait_until(lambda: not set(admin.list_topics()) & names, 60, "topics deleted")
    finally:
        admin.close()

    def created() -> bool:
        try:
            ensure_topics(settings)
            return True
        except Exception:  # the broker may still be finishing the deletion
            return False

    wait_until(created, 60, "topics created")


class Pipeline:
    """Workers per queue and a bridge, as real processes, on this test's audit log and group
    (and topics, if `env` names a KAFKA_TOPIC_PREFIX of its own)."""

    def __init__(self, processes: Processes, settings: Settings, tmp_path: Path, **env: str):
        self.processes = processes
        if "KAFKA_TOPIC_PREFIX" in env:
            settings = settings.replace(kafka_topic_prefix=env["KAFKA_TOPIC_PREFIX"])
        self.settings = settings
        # its own audit log, unless it runs on a namespace's (which then names the file)
        self.audit_path = Path(env.get("AUDIT_LOG_PATH") or tmp_path / "messages.log")
        self.group = f"test-bridge-{uuid.uuid4().hex[:8]}"
        self.metrics_port = int(env.get("BRIDGE_METRICS_PORT") or free_port())  # its bridge's
        self.env = {
            "AUDIT_LOG_PATH": str(self.audit_path),
            "BRIDGE_GROUP_ID": self.group,
            "BRIDGE_METRICS_PORT": str(self.metrics_port),
            **env,
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self.others: dict[str, subprocess.Popen] = {}  # the bridge, and Flower or beat if started
        start_group_at_end(settings, self.group)
        purge_task_queues(settings)

    def start_workers(self, *queues: str) -> None:
        for q in queues or TABLE.bridge_queues:
            self.workers[q] = self.processes.worker(q, env=self.env)

    def start_bridge(self) -> subprocess.Popen:
        self.bridge = self.others["bridge"] = self.processes.start(
            "bridge", "-m", "bridge", env=self.env
        )
        return self.bridge

    def start_flower(self, credentials: str) -> str:
        """Flower on a free loopback port, behind `credentials`; its base URL."""
        port = free_port()
        self.others["flower"] = start_flower(
            self.processes, port, {**self.env, "FLOWER_BASIC_AUTH": credentials}
        )
        self.flower = (f"http://127.0.0.1:{port}", credentials)
        return self.flower[0]

    def start_beat(self, schedule: Path, every_seconds: float = 1.0) -> subprocess.Popen:
        """Beat, ticking every `every_seconds` (its ticks expire in `generate`: no generate
        worker runs here), logging each publish RabbitMQ confirmed."""
        self.others["beat"] = self.processes.beat(schedule, every_seconds, env=self.env)
        return self.others["beat"]

    def assert_working(self, timeout: float = 120) -> None:
        """Every process of this pipeline still running; every worker consuming its queue
        (RabbitMQ's view: a consumer on it) and answering remote control (the worker's view:
        the queues it consumes), wherever each reconnected after a fault; Flower listing them
        and beat publishing, if they run."""
        for name, proc in {**self.workers, **self.others}.items():
            assert proc.poll() is None, (
                f"{name} exited with status {proc.returncode}; its log ends:\n"
                + proc.log_path.read_text(errors="replace")[-3000:]  # type: ignore[attr-defined]
            )
        wait_until(
            lambda: not self.not_consuming(),
            timeout,
            "every worker consuming and answering remote control",
            every=1,
        )
        if "flower" in self.others:
            wait_until(self.flower_lists_every_worker, timeout, "Flower to list every worker")
        if "beat" in self.others:
            published = self.beat_published()
            wait_until(lambda: self.beat_published() > published, 60, "beat to publish a tick")

    def flower_lists_every_worker(self) -> bool:
        """Flower's workers page (remote control through Flower) lists every worker with the
        queue it consumes."""
        base, credentials = self.flower
        try:
            workers = get_json(f"{base}/api/workers?refresh=1", credentials)
        except OSError:
            return False
        consuming = {
            name: {q["name"] for q in info.get("active_queues") or []}
            for name, info in workers.items()
        }
        return all(q in consuming.get(worker_name(q), ()) for q in self.workers)

    def beat_published(self) -> int:
        """Ticks beat published and RabbitMQ confirmed (its debug log says "sent. id->")."""
        log = self.others["beat"].log_path  # type: ignore[attr-defined]
        return log.read_text(errors="replace").count(" sent. id->")

    def not_consuming(self) -> set[str]:
        """The queues whose worker is not consuming or does not answer remote control. Bounded:
        a remote-control publish that no node confirms is retried by kombu without end, and the
        test must fail saying so rather than hang."""
        queues = set(self.workers)
        found: list[set[str]] = []
        asking = threading.Thread(target=lambda: found.append(self._consuming(queues)), daemon=True)
        asking.start()
        asking.join(30)
        return queues - found[0] if found else queues

    def _consuming(self, queues: set[str]) -> set[str]:
        from tasks import app

        # a connection of its own each time: on a cluster, one to a node that went away fails
        # once, and the next is made to a node that answers
        with app.connection_for_read() as conn:
            try:
                channel = conn.channel()
                busy = {q for q in queues if channel.queue_declare(q, passive=True)[2]}
                replies = app.control.inspect(timeout=2, connection=conn).active_queues() or {}
            except (OSError, *conn.connection_errors, *conn.channel_errors):
                return set()
        return {q for q in busy if q in {x["name"] for x in replies.get(worker_name(q), [])}}

    def metric(self, name: str, **labels: str) -> float | None:
        """A metric of this pipeline's bridge (summed over other labels); None while it does not
        answer."""
        samples = try_scrape(self.metrics_port)
        return None if samples is None else total(samples, name, **labels)

    def wait_assigned(self, members: int = 1) -> None:
        """Until `members` bridges of this pipeline's group hold partitions."""
        wait_assigned(self.settings, self.group, members)

    def audit_coords(self) -> list[Coord]:
        if not self.audit_path.exists():
            return []
        # complete lines only: an audit worker may be in the middle of its write()
        *lines, _partial = self.audit_path.read_bytes().split(b"\n")
        return [(r["topic"], r["partition"], r["offset"]) for r in map(json.loads, lines)]

    def wait_audited(self, coords: Iterable[Coord], timeout: float = 240) -> None:
        coords = set(coords)
        wait_until(
            lambda: coords <= set(self.audit_coords()),
            timeout,
            f"{len(coords)} records in the audit log",
        )

    def committed(self) -> dict[tuple[str, int], int]:
        """The bridge group's committed offsets."""
        committed = group_offsets(self.settings, self.group)
        return {(tp.topic, tp.partition): offset for tp, offset in committed.items()}

    def lag(self) -> int:
        """Records on the entity topics that the bridge group has not committed yet."""
        _, ends = offsets(self.settings, topics(self.settings).entities)
        committed = self.committed()
        return sum(end - committed.get((tp.topic, tp.partition), 0) for tp, end in ends.items())

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`python -m bookstore ARGS` with this pipeline's configuration (and `env`)."""
        return run("-m", "bookstore", *args, env={**self.env, **env})

    def check(self) -> dict:
        """`check --json`, which must pass (exit 0)."""
        result = self.cli("check", "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def parked(self) -> list[dict]:
        result = self.cli("parked", "list", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


class Stores:
    """Read-only views of the test databases, as docs/contracts.md describes them."""

    def __init__(self, settings: Settings):
        self.pg = psycopg2.connect(settings.store("postgres").dsn)
        self.pg.autocommit = True
        self.mongo = pymongo.MongoClient(settings.store("mongo").uri)[settings.store("mongo").db]
        self.redis = redis.Redis.from_url(settings.store("redis").url, decode_responses=True)

    def customers(self, ids) -> dict[str, dict]:
        with self.pg.cursor() as cur:
            try:
                cur.execute(
                    "SELECT id::text, name, email FROM customers WHERE id = ANY(%s::uuid[])",
                    (list(ids),),
                )
            except psycopg2.errors.UndefinedTable:  # the worker creates it with its first write
                return {}
            return {i: {"id": i, "name": n, "email": e} for i, n, e in cur.fetchall()}

    def books(self, ids) -> dict[str, dict]:
        """The documents as docs/contracts.md describes them (without the record each came from)."""
        found = self.mongo.books.find({"_id": {"$in": list(ids)}}, {"_source": 0})
        return {d["_id"]: d for d in found}

    def orders(self, ids) -> dict[str, dict]:
        """The order hashes' message fields (without the record each came from)."""
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

    def missing(self, ds: Dataset) -> dict[str, list[str]]:
        """Per store, the dataset's ids it does not hold (empty when complete)."""
        held = {
            "customers": (list(ds.customers), self.customers),
            "books": (list(ds.books), self.books),
            "orders": (list(ds.orders), self.orders),
        }
        return {name: sorted(set(ids) - set(found(ids))) for name, (ids, found) in held.items()}

    def complete(self, ds: Dataset) -> bool:
        return not any(self.missing(ds).values())

    def close(self) -> None:
        self.pg.close()
        self.mongo.client.close()
        self.redis.close()


def assert_stored_exactly(stores: Stores, ds) -> None:
    assert stores.customers(ds.customers) == ds.customers
    books = stores.books(ds.books)
    assert set(books) == set(ds.books)
    for book_id, book in ds.books.items():
        doc = books[book_id]
        assert {f: doc[f] for f in ("isbn", "title", "authors", "publishedDate")} == {
            f: book[f] for f in ("isbn", "title", "authors", "publishedDate")
        }
    orders = stores.orders(list(ds.orders))
    assert set(orders) == set(ds.orders)
    for order_id, order in ds.orders.items():
        held = orders[order_id]
        assert held["customer_id"] == order["customer_id"]
        assert held["book_id"] == order["book_id"]
        assert int(held["quantity"]) == order["quantity"]
        assert held["timestamp"].endswith("Z")
    per_customer: dict[str, list] = {}
    for o in ds.orders.values():
        per_customer.setdefault(o["customer_id"], []).append(o["id"])
    for customer_id, ids in per_customer.items():
        history = stores.history(customer_id)
        assert sorted(history) == sorted(ids)  # each order once in the history


def dead_letters_of(
    settings: Settings,
    origins: Iterable[Coord],
    until: Iterable[Coord] | None = None,
    since: dict[int, int] | None = None,
    timeout: float = 120,
) -> dict[Coord, list[tuple[bytes | None, bytes | None, dict[str, str]]]]:
    """Every dead letter whose origin is one of `origins`: (key, value, headers) per origin,
    read from `since` (partition -> offset, as `end_offsets` gave it before; default: the start
    of the dead-letter topic) until each of `until` (default: every origin) was seen."""
    origins = set(origins)
    wanted = origins if until is None else set(until)
    found: dict[Coord, list] = {}
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security_options(settings),
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    tps = [TopicPartition(DEAD_LETTERS, p) for p in consumer.partitions_for_topic(DEAD_LETTERS)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, (since or {}).get(tp.partition, 0))
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= set(found) and time.monotonic() < deadline:
            for records in consumer.poll(1000).values():
                for letter in map(Letter.from_kafka, records):
                    if letter.origin in origins:
                        found.setdefault(letter.origin, []).append(
                            (letter.key, letter.value, letter.headers)
                        )
    finally:
        consumer.close()
    return found


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """partition -> the offset the next record of `topic` will get."""
    return {tp.partition: offset for tp, offset in offsets(settings, [topic])[1].items()}


def dead_letters(settings: Settings, values: set[bytes], timeout: float = 120) -> dict[bytes, dict]:
    """Read the dead-letter topic from the start until every value in `values` was seen."""
    consumer = KafkaConsumer(
        DEAD_LETTERS,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        **security_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    found: dict[bytes, dict] = {}
    deadline = time.monotonic() + timeout
    while not values <= set(found) and time.monotonic() < deadline:
        for records in consumer.poll(1000).values():
            for letter in map(Letter.from_kafka, records):
                if letter.value in values:
                    seen = found.setdefault(letter.value, letter.headers)
                    seen["_count"] = seen.get("_count", 0) + 1
    consumer.close()
    return found
