"""The poison suite: one test per bad-input class (docs/contracts.md), on the real servers.

Each bad record travels in the middle of one batch of valid records of its topic (all sent at
once to one partition, so the bridge gathers them into one task): every valid record must be
stored, the bad one dead-lettered once with its stage, original bytes, key and origin, nothing
parked, and `check` clean. One pipeline serves the whole module, on stores of its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg2
import pytest
import redis

from bookstore.namespace import Namespace
from bookstore.records import Record
from bookstore.schemas import Book
from tests import poison
from tests.integration.pipeline import (
    Coord,
    Message,
    Pipeline,
    Stores,
    dead_letters_of,
    end_offsets,
    produce_each,
)
from tests.poison import Bad
from tests.support import BOOKS, CUSTOMERS, DEAD_LETTERS, ORDERS, TOPICS, Processes, wait_until

NS = Namespace("bookstore_poison", {"redis_db": 6})
VALID_AROUND = 4  # valid records before, between and after the bad ones


@dataclass
class Sent:
    coords: list[Coord]
    valid: dict[str, list[dict]]  # topic -> the valid records sent
    bad: dict[Coord, Bad]


@dataclass
class Suite:
    pipeline: Pipeline
    stores: Stores
    settings: object
    customer_id: str
    book_id: str

    def valid(self, topic: str, tag: str) -> dict:
        if topic == CUSTOMERS:
            return poison.customer(tag)
        if topic == BOOKS:
            return poison.book(tag)
        return poison.order(tag, self.customer_id, self.book_id)

    def send_among_valid(self, bad: list[Bad], tag: str) -> Sent:
        """Each bad record between valid ones of its topic, all of a topic in one send to its
        partition 0; returns once Kafka acknowledged them."""
        coords: list[Coord] = []
        valid: dict[str, list[dict]] = {}
        bad_at: dict[Coord, Bad] = {}
        for topic in TOPICS.entities:
            mine = [b for b in bad if b.topic == topic]
            if not mine:
                continue
            messages: list[Message] = []
            roles: list[Bad | None] = []
            for item in [*mine, None]:
                for _ in range(VALID_AROUND):
                    record = self.valid(topic, tag)
                    valid.setdefault(topic, []).append(record)
                    messages.append((topic, record["id"].encode(), json.dumps(record).encode()))
                    roles.append(None)
                if item is not None:
                    messages.append((topic, item.key, item.value))
                    roles.append(item)
            sent = produce_each(self.settings, messages, partition=0)
            coords += sent
            bad_at.update({c: r for c, r in zip(sent, roles, strict=True) if r is not None})
        return Sent(coords, valid, bad_at)

    def wait_stored(self, valid: dict[str, list[dict]]) -> None:
        readers = {
            CUSTOMERS: self.stores.customers,
            BOOKS: self.stores.books,
            ORDERS: self.stores.orders,
        }

        def all_stored() -> bool:
            return all(
                len(readers[t](list(records))) == len(records)
                for t, records in ((t, {r["id"]: r for r in rs}) for t, rs in valid.items())
            )

        wait_until(all_stored, 120, "every valid record of the batch in its store")

    def assert_outcome(self, sent: Sent, since: dict[int, int]) -> None:
        """Valid records stored, each bad one dead-lettered once as expected, none of the valid
        ones dead-lettered, everything audited, nothing parked, `check` clean."""
        self.wait_stored(sent.valid)
        letters = dead_letters_of(self.settings, sent.coords, until=sent.bad, since=since)
        assert set(letters) == set(sent.bad), "a valid record was dead-lettered, or a bad one not"
        for coord, bad in sent.bad.items():
            assert len(letters[coord]) == 1, f"{coord} dead-lettered {len(letters[coord])} times"
            key, value, headers = letters[coord][0]
            assert (key, value) == (bad.key, bad.value)  # the original bytes, unchanged
            assert headers["error.stage"] == bad.stage, headers
            assert headers["error.reason"].strip()
            assert (headers["origin.topic"], headers["origin.partition"]) == (
                coord[0],
                str(coord[1]),
            )
            assert headers["origin.offset"] == str(coord[2])
        self.pipeline.wait_audited(sent.coords, timeout=120)
        assert self.pipeline.parked() == []
        self.pipeline.check()


@pytest.fixture(scope="module")
def suite(settings, tmp_path_factory) -> Iterator[Suite]:
    NS.reset(settings)
    mine = NS.settings(settings)
    tmp = tmp_path_factory.mktemp("poison")
    processes = Processes(tmp)
    pipeline = Pipeline(
        processes,
        settings,
        tmp,
        **NS.env(settings),
        RECORD_MAX_BYTES="200000",
        BRIDGE_BATCH_WAIT_MS="1000",
        PARK_AFTER_RETRIES="2",
        RETRY_MAX_SECONDS="1",
    )
    stores = Stores(mine)
    try:
        yield _seeded(pipeline, stores, settings, mine)
    finally:  # also when the seeding failed: no process outlives the module
        processes.stop_all()
        stores.close()


def _seeded(pipeline: Pipeline, stores: Stores, settings, mine) -> Suite:
    """Start the pipeline and seed it."""
    pipeline.start_workers()
    pipeline.start_bridge()
    # What the orders reference, and a record on every partition: `check` reads each partition
    # of the audit log from its first line on.
    tag = uuid.uuid4().hex[:8]
    customer, book = poison.customer(tag), poison.book(tag)
    seed: list[Message] = [
        (CUSTOMERS, None, json.dumps(customer).encode()),
        (BOOKS, None, json.dumps(book).encode()),
        (ORDERS, None, json.dumps(poison.order(tag, customer["id"], book["id"])).encode()),
    ]
    coords = []
    for partition in range(settings.kafka_partitions):
        coords += produce_each(settings, seed, partition=partition)
    pipeline.wait_audited(coords, timeout=120)
    wait_until(lambda: stores.customers([customer["id"]]), 60, "the seed customer")
    wait_until(lambda: stores.books([book["id"]]), 60, "the seed book")
    return Suite(pipeline, stores, mine, customer["id"], book["id"])


def _dead_letter_start(suite: Suite) -> dict[int, int]:
    return end_offsets(suite.settings, DEAD_LETTERS)


@pytest.mark.parametrize("name", list(poison.classes("", str(uuid.UUID(int=0)), "")))
def test_a_bad_record_costs_no_other_record_of_its_batch(suite, name):
    tag = uuid.uuid4().hex[:8]
    since = _dead_letter_start(suite)
    sent = suite.send_among_valid(poison.classes(tag, suite.customer_id, suite.book_id)[name], tag)
    suite.assert_outcome(sent, since)


def test_dangerous_looking_valid_records_are_stored_verbatim(suite):
    tag = uuid.uuid4().hex[:8]
    records = poison.verbatim(tag, suite.customer_id, suite.book_id)
    messages = [
        (topic, r["id"].encode(), json.dumps(r, ensure_ascii=False).encode())
        for topic, rs in records.items()
        for r in rs
    ]
    coords = produce_each(suite.settings, messages)
    suite.wait_stored(records)
    for c in records[CUSTOMERS]:
        assert suite.stores.customers([c["id"]]) == {c["id"]: c}
    for b in records[BOOKS]:
        stored = suite.stores.books([b["id"]])[b["id"]]
        assert stored == Book.model_validate(b).document()
        assert stored["extra"] == {"ok": {"keep": [1, "2"]}}  # `$where`, `a.b`, `$inner` dropped
    for o in records[ORDERS]:
        held = suite.stores.orders([o["id"]])[o["id"]]
        assert held["book_id"] == o["book_id"] and held["customer_id"] == o["customer_id"]
    suite.pipeline.wait_audited(coords, timeout=120)
    audited = {
        (line["topic"], line["partition"], line["offset"]): line["value"]
        for line in map(json.loads, suite.pipeline.audit_path.read_text().splitlines())
    }
    for coord, (_, _, value) in zip(coords, messages, strict=True):
        assert audited[coord] == value.decode()  # the raw text, exactly as received
    suite.pipeline.check()


def test_an_email_held_by_another_customer_is_a_store_dead_letter(suite):
    tag = uuid.uuid4().hex[:8]
    holder = poison.customer(tag)
    produce_each(suite.settings, [(CUSTOMERS, None, json.dumps(holder).encode())])
    suite.wait_stored({CUSTOMERS: [holder]})
    since = _dead_letter_start(suite)
    rival = poison.customer(tag, email=holder["email"].upper())
    sent = suite.send_among_valid([Bad(CUSTOMERS, json.dumps(rival).encode(), "store")], tag)
    suite.assert_outcome(sent, since)
    assert suite.stores.customers([holder["id"]]) == {holder["id"]: holder}


def test_what_a_store_refuses_for_one_record_is_a_store_dead_letter(suite):
    tag = uuid.uuid4().hex[:8]
    taken = str(uuid.uuid4())
    r = redis.Redis.from_url(suite.settings.store("redis").url)
    r.set(f"customer:{taken}:orders", "not a sorted set")  # the history key holds a string
    r.close()
    bad = [
        Bad(ORDERS, json.dumps(poison.order(tag, taken, suite.book_id)).encode(), "store"),
        # FerretDB v1 refuses nested arrays (MongoDB itself would store this book)
        Bad(BOOKS, json.dumps(poison.book(tag, extra={"grid": [[1, 2], [3]]})).encode(), "store"),
    ]
    since = _dead_letter_start(suite)
    sent = suite.send_among_valid(bad, tag)
    suite.assert_outcome(sent, since)
    reasons = {
        h["error.reason"]
        for letters in dead_letters_of(suite.settings, sent.bad, since=since).values()
        for _, _, h in letters
    }
    assert any("WRONGTYPE" in reason for reason in reasons), reasons
    assert any("nested arrays" in reason for reason in reasons), reasons


@pytest.fixture
def trigger(suite) -> Iterator[Callable[[str], None]]:
    """Install a PostgreSQL trigger on customers (the kind of surprise a DBA can add); dropped
    at teardown."""
    conn = psycopg2.connect(suite.settings.store("postgres").dsn)
    conn.autocommit = True

    def install(condition: str) -> None:
        with conn.cursor() as cur:
            cur.execute(
                f"""CREATE OR REPLACE FUNCTION poison_trigger() RETURNS trigger AS $$
                    BEGIN
                      IF {condition} THEN
                        RAISE EXCEPTION 'refused by a trigger: %', NEW.name USING ERRCODE = 'P0001';
                      END IF;
                      RETURN NEW;
                    END $$ LANGUAGE plpgsql;
                    DROP TRIGGER IF EXISTS poison_trigger ON customers;
                    CREATE TRIGGER poison_trigger BEFORE INSERT OR UPDATE ON customers
                      FOR EACH ROW EXECUTE FUNCTION poison_trigger();"""
            )

    yield install
    with conn.cursor() as cur:
        cur.execute("DROP TRIGGER IF EXISTS poison_trigger ON customers")
    conn.close()


def test_an_error_nobody_foresaw_is_isolated_to_its_record_by_splitting_the_batch(suite, trigger):
    tag = uuid.uuid4().hex[:8]
    trigger(f"NEW.name = 'pill {tag}'")
    pill = poison.customer(tag, name=f"pill {tag}")
    since = _dead_letter_start(suite)
    sent = suite.send_among_valid([Bad(CUSTOMERS, json.dumps(pill).encode(), "store")], tag)
    suite.assert_outcome(sent, since)
    [(_, _, headers)] = dead_letters_of(suite.settings, sent.bad, since=since)[next(iter(sent.bad))]
    assert headers["error.reason"].startswith("RaiseException: refused by a trigger"), headers


def test_a_failure_about_no_record_parks_the_task_until_an_operator_requeues_it(suite, trigger):
    tag = uuid.uuid4().hex[:8]
    trigger("true")  # every customer is refused: no record is at fault, the set-up is
    customers = [poison.customer(tag) for _ in range(5)]
    coords = produce_each(
        suite.settings, [(CUSTOMERS, None, json.dumps(c).encode()) for c in customers], 0
    )
    parked = wait_until(suite.pipeline.parked, 120, "the task to be parked")
    assert [(p["task"], p["queue"], p["records"]) for p in parked] == [
        ("tasks.persist.store_customers", "postgres", len(customers))
    ]
    assert suite.stores.customers([c["id"] for c in customers]) == {}
    stats = json.loads(suite.pipeline.cli("stats", "--json").stdout)
    assert stats["queues"]["parked"]["messages"] == 1

    with psycopg2.connect(suite.settings.store("postgres").dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TRIGGER poison_trigger ON customers")  # the operator fixes the cause
    conn.close()
    requeue = suite.pipeline.cli("parked", "requeue", "--all")
    assert requeue.returncode == 0, requeue.stderr
    suite.wait_stored({CUSTOMERS: customers})
    assert suite.pipeline.parked() == []
    suite.pipeline.wait_audited(coords, timeout=60)
    suite.pipeline.check()


def test_records_of_every_class_stay_apart_in_the_audit_log(suite):
    """The audit task judges nothing: every record, however bad, is one line with its raw text
    (or its bytes in base64 when not UTF-8; null for a tombstone)."""
    tag = uuid.uuid4().hex[:8]
    bad = [b for samples in poison.classes(tag, suite.customer_id, "b").values() for b in samples]
    sent = suite.send_among_valid(bad, tag)
    suite.pipeline.wait_audited(sent.coords, timeout=120)
    lines = {
        (line["topic"], line["partition"], line["offset"]): line
        for line in map(json.loads, suite.pipeline.audit_path.read_text().splitlines())
    }
    for coord, b in sent.bad.items():
        line = lines[coord]
        raw = Record(coord[0], coord[1], coord[2], b.key, 0, b.value).to_wire()
        assert (line.get("value"), line.get("value_b64")) == (raw["value"], raw.get("value_b64"))
