"""Prove the stores equal the log: what every key's latest storable record says, and nothing else.

The log is read once, from the first offset to the end each partition has when verification
starts. For every entity key the expected content is that of its latest record in Kafka order
(timestamp, partition, offset: the stores' own last-write-wins order) among the records that
validate and that the pipeline did not dead-letter (the `dead-letters` topic names them by
origin coordinates: an e-mail conflict is decided once, by the pipeline). Only a digest and the
record's coordinates are kept per key, so memory grows with the number of keys, not their size.

Each store is then streamed once (its `entries`: key, canonical form, source record; a record's
form is its store's `form`) and compared key by key: *missing* (the log holds it, the store
does not), *extra* (stored, the log does not hold it), *different* (both, not equal). A stored
entity written from a record past the end read (the pipeline kept going meanwhile) is counted as
*newer* and not judged. The audit log must hold every record of the entity topics with its exact
value; a line the log no longer holds is legitimate when compaction or retention removed it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bookstore import dead_letter_topic
from bookstore.config import Settings
from bookstore.entities import StoreSpec, topics
from bookstore.kafka import admin_client, read_topics
from bookstore.records import Record
from bookstore.schemas import Rejected, parse
from bookstore.topic_config import CLEANUP_POLICY, current_configs

Order3 = tuple[int, int, int]  # (timestamp, partition, offset)


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


@dataclass
class Expected:
    """The latest storable record of each key: its Kafka order and its content's digest."""

    latest: dict[str, tuple[Order3, bytes]] = field(default_factory=dict)

    def offer(self, key: str, order: Order3, form: Any) -> None:
        held = self.latest.get(key)
        if held is None or held[0] < order:
            self.latest[key] = (order, digest(form))


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


def read_log(settings: Settings, specs: Iterable[StoreSpec]) -> LogView:
    """The log as the stores of `specs` need it: each key's latest storable record for a store
    of the latest per key, every record's value for a store of every record (the audit log)."""
    specs = list(specs)
    names = topics(settings)
    dead = dead_letter_topic.origins(settings)
    view = LogView()
    judged = {
        names.of(spec.entities[0]): (
            settings.entities.by_name[spec.entities[0]].model_class(),
            spec.store_class().form,
        )
        for spec in specs
        if not spec.every_record
    }
    every = sorted({names.of(e) for spec in specs if spec.every_record for e in spec.entities})
    read = sorted({*judged, *every})
    if every:
        view.compacted = compacted_topics(settings, every)
    for batch in read_topics(settings, read, on_bounds=_bounds_into(view)):
        for message in batch:
            record = Record.from_kafka(message)
            where = (record.topic, record.partition)
            if record.topic in every:
                view.values[where][record.offset] = _value_digest(record.value)
                if record.key is not None:
                    view.last_of_key[where][record.key] = record.offset
            origin = (record.topic, record.partition, record.offset)
            if record.topic not in judged or origin in dead:
                continue
            model, form = judged[record.topic]
            try:
                entity = parse(model, record.value, settings.record_max_bytes)
            except Rejected:
                continue
            view.entities[record.topic].offer(entity.id, record.kafka_order, form(entity))
    return view


def compacted_topics(settings: Settings, names: Iterable[str]) -> set[str]:
    admin = admin_client(settings)
    try:
        configs = current_configs(admin, names)
    finally:
        admin.close()
    return {t for t, c in configs.items() if "compact" in c[CLEANUP_POLICY]}


def _bounds_into(view: LogView):
    def keep(starts: dict, ends: dict) -> None:
        view.starts = {(tp.topic, tp.partition): o for tp, o in starts.items()}
        view.ends = {(tp.topic, tp.partition): o for tp, o in ends.items()}

    return keep


def _value_digest(value: bytes | None) -> bytes:
    return b"" if value is None else hashlib.blake2b(value, digest_size=8).digest()


# --- comparing each store ----------------------------------------------------------------------


def verify(settings: Settings, stores: Iterable[str], examples: int = 5) -> list[Report]:
    """One report per store (by name), as `settings` locate them, against the log."""
    known = {s.name: s for s in settings.entities.stores if s.verifiable}
    unknown = sorted(set(stores) - set(known))
    if unknown:
        raise ValueError(f"verify compares {', '.join(known)}; not {', '.join(unknown)}")
    specs = [known[name] for name in stores]
    view = read_log(settings, specs)
    return [
        _verify_every_record(settings, view, spec, examples)
        if spec.every_record
        else _verify_latest(settings, view, spec, examples)
        for spec in specs
    ]


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


def _verify_latest(settings: Settings, view: LogView, spec: StoreSpec, examples: int) -> Report:
    check = Comparison(spec.name, topics(settings).of(spec.entities[0]), view)
    with spec.open(settings) as store:
        check.compare(store.entries())
    return check.report(examples)


def _verify_every_record(
    settings: Settings, view: LogView, spec: StoreSpec, examples: int
) -> Report:
    """Every record of its entities' topics in the store with its exact value (duplicates are
    at-least-once, not differences); an entry the topics do not hold is extra unless compaction
    (a later record with its key, or any record without a key) or retention (before the
    partition's first offset) removed it."""
    mine = {topics(settings).of(e) for e in spec.entities}
    report = Report(
        spec.name, expected=sum(len(v) for (t, _), v in view.values.items() if t in mine)
    )
    found: dict[tuple[str, int], set[int]] = defaultdict(set)
    with spec.open(settings) as store:
        for record in store.entries():
            where, offset = (record.topic, record.partition), record.offset
            key = f"{record.topic}[{record.partition}]@{offset}"
            if where not in view.ends or offset >= view.ends[where]:
                if where in view.ends:
                    report.newer += 1
                else:
                    report.found(
                        "extra", key, "a topic or partition the log does not have", examples
                    )
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
        if where[0] not in mine:
            continue
        for offset in sorted(offsets.keys() - found[where]):
            report.found("missing", f"{where[0]}[{where[1]}]@{offset}", "no audit line", examples)
    return report
