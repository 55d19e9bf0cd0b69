"""Prove the stores equal the log: what every key's latest storable record says, and nothing else.

The log is read once, from the first offset to the end each partition has when verification
starts. For every entity key the expected content is that of its latest record in Kafka order
(timestamp, partition, offset: the stores' own last-write-wins order) among the records that
validate and that the pipeline did not dead-letter (the `dead-letters` topic names them by
origin coordinates: an e-mail conflict is decided once, by the pipeline). Only a digest and the
record's coordinates are kept per key, so memory grows with the number of keys, not their size.

Each store is then streamed once and compared key by key: *missing* (the log holds it, the store
does not), *extra* (stored, the log does not hold it), *different* (both, not equal). A stored
entity written from a record past the end read (the pipeline kept going meanwhile) is counted as
*newer* and not judged. The audit log must hold every record of the entity topics with its exact
value; a line the log no longer holds is legitimate when compaction or retention removed it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bookstore import dead_letter_topic
from bookstore.config import Settings
from bookstore.entities import BOOKS, BY_NAME, CUSTOMERS, ENTITIES, ORDERS, topics
from bookstore.kafka import admin_client, read_topics
from bookstore.records import Record
from bookstore.schemas import Book, Customer, Order, Rejected, parse
from bookstore.stores.audit import AuditLog
from bookstore.stores.mongo import BookStore, source_order
from bookstore.stores.postgres import CustomerStore
from bookstore.stores.redis_orders import OrderStore
from bookstore.topic_config import CLEANUP_POLICY, current_configs

Order3 = tuple[int, int, int]  # (timestamp, partition, offset)
STORE_ENTITY = {e.queue: e.name for e in ENTITIES}
# the stores with a canonical form to compare (an entity added later is rebuilt, not verified)
STORES = ("postgres", "mongo", "redis", "audit")


@dataclass
class Report:
    store: str
    checked: int = 0  # entries of the store compared
    expected: int = 0  # entries the log says it must hold
    newer: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.different

    def found(self, kind: str, key: str, detail: str = "", limit: int = 5) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < limit:
            self.examples.append(f"{kind} {key}" + (f": {detail}" if detail else ""))


def digest(form: Any) -> bytes:
    text = json.dumps(form, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


# One canonical form per entity, built the same way from a validated record and a stored entry.


def customer_form(name: str, email: str) -> list[str]:
    return [name, email]


def book_form(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("_id", "_source")}


def order_form(customer_id: str, book_id: str, quantity: int, timestamp: str) -> list[Any]:
    return [customer_id, book_id, int(quantity), timestamp]


@dataclass
class Expected:
    """The latest storable record of each key: its Kafka order and its content's digest."""

    latest: dict[str, tuple[Order3, bytes]] = field(default_factory=dict)
    history: dict[str, tuple[str, float]] = field(default_factory=dict)  # order -> customer, score

    def offer(self, key: str, order: Order3, form: Any) -> bool:
        held = self.latest.get(key)
        if held is not None and held[0] >= order:
            return False
        self.latest[key] = (order, digest(form))
        return True


@dataclass
class LogView:
    """What the log holds, read up to `ends`."""

    ends: dict[tuple[str, int], int] = field(default_factory=dict)  # by (topic, partition)
    entities: dict[str, Expected] = field(default_factory=lambda: defaultdict(Expected))
    # audit: every record's value digest, and for compacted topics each key's last offset
    values: dict[tuple[str, int], dict[int, bytes]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    last_of_key: dict[tuple[str, int], dict[bytes, int]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    starts: dict[tuple[str, int], int] = field(default_factory=dict)
    compacted: set[str] = field(default_factory=set)  # topics: a record without a key may go


def read_log(settings: Settings, stores: Iterable[str]) -> LogView:
    """The log as `stores` need it."""
    stores = set(stores)
    names = topics(settings)
    dead = dead_letter_topic.origins(settings)
    view = LogView()
    judged = {names.of(e): BY_NAME[e].model_class() for e in stores_entities(stores)}
    read = names.entities if "audit" in stores else sorted(judged)
    if "audit" in stores:
        view.compacted = compacted_topics(settings, read)
    for batch in read_topics(settings, read, on_bounds=_bounds_into(view)):
        for message in batch:
            record = Record.from_kafka(message)
            where = (record.topic, record.partition)
            if "audit" in stores:
                view.values[where][record.offset] = _value_digest(record.value)
                if record.key is not None:
                    view.last_of_key[where][record.key] = record.offset
            model = judged.get(record.topic)
            if model is None:
                continue
            if (record.topic, record.partition, record.offset) in dead:
                continue
            try:
                entity = parse(model, record.value, settings.record_max_bytes)
            except Rejected:
                continue
            _expect(view.entities[record.topic], entity, record)
    return view


def compacted_topics(settings: Settings, names: Iterable[str]) -> set[str]:
    admin = admin_client(settings)
    try:
        configs = current_configs(admin, names)
    finally:
        admin.close()
    return {t for t, c in configs.items() if "compact" in c[CLEANUP_POLICY]}


def stores_entities(stores: set[str]) -> set[str]:
    return {STORE_ENTITY[s] for s in stores if s in STORE_ENTITY}


def _bounds_into(view: LogView):
    def keep(starts: dict, ends: dict) -> None:
        view.starts = {(tp.topic, tp.partition): o for tp, o in starts.items()}
        view.ends = {(tp.topic, tp.partition): o for tp, o in ends.items()}

    return keep


def _expect(expected: Expected, entity: Any, record: Record) -> None:
    order = record.kafka_order
    if isinstance(entity, Customer):
        expected.offer(entity.id, order, customer_form(entity.name, entity.email))
    elif isinstance(entity, Book):
        expected.offer(entity.id, order, book_form(entity.document()))
    elif isinstance(entity, Order):
        form = order_form(entity.customer_id, entity.book_id, entity.quantity, entity.iso_timestamp)
        if expected.offer(entity.id, order, form):
            expected.history[entity.id] = (entity.customer_id, entity.epoch_seconds)


def _value_digest(value: bytes | None) -> bytes:
    return b"" if value is None else hashlib.blake2b(value, digest_size=8).digest()


# --- comparing each store ----------------------------------------------------------------------


def verify(settings: Settings, stores: Iterable[str], examples: int = 5) -> list[Report]:
    """One report per store, `stores` as `settings` locate them, against the log."""
    stores = list(stores)
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        raise ValueError(f"verify compares {', '.join(STORES)}; not {', '.join(unknown)}")
    view = read_log(settings, stores)
    checks = {
        "postgres": _verify_customers,
        "mongo": _verify_books,
        "redis": _verify_orders,
        "audit": _verify_audit,
    }
    return [checks[s](settings, view, examples) for s in stores]


def _newer(view: LogView, topic: str, source: Order3) -> bool:
    _, partition, offset = source
    return offset >= view.ends.get((topic, partition), 0)


@dataclass
class Comparison:
    """One store's entries against the log: at most one finding per key."""

    store: str
    topic: str
    view: LogView
    findings: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (kind, detail)
    seen: set[str] = field(default_factory=set)
    checked: int = 0
    newer: int = 0

    def find(self, key: str, kind: str, detail: str) -> None:
        self.findings.setdefault(key, (kind, detail))

    def compare(self, stored: Iterable[tuple[str, Any, Order3 | None]]) -> None:
        """(key, form, source) entries: equal to the latest storable record of their key?"""
        expected = self.view.entities[self.topic].latest
        for key, form, source in stored:
            self.seen.add(key)
            if source is not None and _newer(self.view, self.topic, source):
                self.newer += 1
                continue
            self.checked += 1
            held = expected.get(key)
            if held is None:
                self.find(key, "extra", "stored, not in the log")
            elif digest(form) != held[1]:
                self.find(key, "different", f"stored {form!r} ≠ {_where(self.topic, held[0])}")
        for key in expected.keys() - self.seen:
            self.find(key, "missing", f"from {_where(self.topic, expected[key][0])}")

    def report(self, examples: int) -> Report:
        report = Report(
            self.store,
            checked=self.checked,
            expected=len(self.view.entities[self.topic].latest),
            newer=self.newer,
        )
        for key in sorted(self.findings):
            kind, detail = self.findings[key]
            report.found(kind, key, detail, examples)
        return report


def _where(topic: str, order: Order3) -> str:
    _, partition, offset = order
    return f"{topic}[{partition}]@{offset}"


def _verify_customers(settings: Settings, view: LogView, examples: int) -> Report:
    check = Comparison("postgres", topics(settings).of(CUSTOMERS), view)
    with CustomerStore.from_settings(settings) as store:
        check.compare((r.id, customer_form(r.name, r.email), src) for r, src in store.scan())
    return check.report(examples)


def _verify_books(settings: Settings, view: LogView, examples: int) -> Report:
    check = Comparison("mongo", topics(settings).of(BOOKS), view)
    with BookStore.from_settings(settings) as store:
        check.compare(
            (d["_id"], book_form(d), source_order(d["_source"]) if "_source" in d else None)
            for d in store.scan()
        )
    return check.report(examples)


def _verify_orders(settings: Settings, view: LogView, examples: int) -> Report:
    """The hashes as for the other stores; then each order in its customer's history exactly
    once, with its score, and the `orders` set naming exactly the stored orders."""
    check = Comparison("redis", topics(settings).of(ORDERS), view)
    expected = view.entities[check.topic]
    with OrderStore.from_settings(settings) as store:
        check.compare(_hashes(store))
        histories: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for cid, entries in store.histories():
            for oid, score in entries:
                histories[oid].append((cid, score))
        members = store.set_members()
    for oid, (cid, score) in expected.history.items():
        if oid in check.seen and histories.get(oid) != [(cid, score)]:
            check.find(oid, "different", f"in the histories {histories.get(oid, [])}")
    for oid in histories.keys() - check.seen:
        check.find(oid, "extra", f"in a history {histories[oid]} without its hash")
    for oid in members ^ check.seen:
        check.find(oid, "different", "the `orders` set and the order hashes disagree")
    return check.report(examples)


def _hashes(store: OrderStore) -> Iterator[tuple[str, Any, Order3 | None]]:
    """(order id, form, source) of every order hash; a hash this pipeline did not write has
    its raw fields as form (never equal to a record's)."""
    for oid, f in store.scan():
        try:
            form: Any = order_form(f["customer_id"], f["book_id"], f["quantity"], f["timestamp"])
            source: Order3 | None = (
                int(f["source_timestamp"]),
                int(f["source_partition"]),
                int(f["source_offset"]),
            )
        except (KeyError, ValueError):
            form, source = f, None
        yield oid, form, source


def _verify_audit(settings: Settings, view: LogView, examples: int) -> Report:
    """Every record of the entity topics in the audit log with its exact value (duplicates are
    at-least-once, not differences); a line the topics do not hold is extra unless compaction
    (a later record with its key, or any record without a key) or retention (before the
    partition's first offset) removed it."""
    report = Report("audit", expected=sum(len(v) for v in view.values.values()))
    found: dict[tuple[str, int], set[int]] = defaultdict(set)
    for wire in AuditLog(settings.audit_log_path).lines():
        record = Record.from_wire(wire)
        where, offset = (record.topic, record.partition), record.offset
        key = f"{record.topic}[{record.partition}]@{offset}"
        if where not in view.ends or offset >= view.ends[where]:
            if where in view.ends:
                report.newer += 1
            else:
                report.found("extra", key, "a topic or partition the log does not have", examples)
            continue
        report.checked += 1
        held = view.values[where].get(offset)
        if held is None:
            if record.key is None:  # compaction discards records without a key
                removed = record.topic in view.compacted
            else:  # compaction, now or before, kept a later record of its key
                removed = view.last_of_key[where].get(record.key, -1) > offset
            removed = removed or offset < view.starts.get(where, 0)
            if not removed:
                report.found("extra", key, "not in the log", examples)
        elif offset in found[where]:
            continue  # a duplicate line (at-least-once)
        elif held != _value_digest(record.value):
            report.found("different", key, "its value differs from the log's", examples)
        found[where].add(offset)
    for where, offsets in view.values.items():
        for offset in sorted(offsets.keys() - found[where]):
            report.found("missing", f"{where[0]}[{where[1]}]@{offset}", "no audit line", examples)
    return report
