"""Batching, without Kafka or Celery: records in per topic, batches out.

A topic's buffered records leave as batches when the buffer is full (BRIDGE_BATCH_SIZE records or
BRIDGE_BATCH_MAX_BYTES, the task message's exact size), when its oldest record waited
BRIDGE_BATCH_WAIT_MS, or once the consumer had nothing more to add (`caught_up`): under a
backlog batches fill up; at a steady load a batch holds what one fetch brought, and Kafka holds
each fetch up to BRIDGE_BATCH_MIN_WAIT_MS while records flow (bridge/fetch_wait.py), so that is
what arrived in that short wait (more at higher rates), not a task per record or two. Each
record's audit line is encoded once, when it arrives; a batch carries its lines as one string for
its persistence task, and the batches published together share audit tasks (`audit_payloads`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka.structs import TopicPartition

from bookstore.records import Record, audit_line, line_size


@dataclass(frozen=True)
class Batch:
    topic: str
    records: list[Record]
    lines: str  # the records' audit lines, one string: the payload of both tasks
    size: int = 0  # the lines' size inside a task message (line_size), for audit grouping


@dataclass
class _Buffer:
    """One topic's records waiting for their task, each with its line, encoded once."""

    first_at: float
    records: list[Record] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # line_size() of each line
    total: int = 0

    def add(self, record: Record, line: str | None = None, size: int | None = None) -> None:
        line = audit_line(record) if line is None else line
        size = line_size(line) if size is None else size
        self.records.append(record)
        self.lines.append(line)
        self.sizes.append(size)
        self.total += size

    def without(self, partitions: set[TopicPartition]) -> _Buffer:
        kept = _Buffer(self.first_at)
        for record, line, size in zip(self.records, self.lines, self.sizes, strict=True):
            if TopicPartition(record.topic, record.partition) not in partitions:
                kept.add(record, line, size)
        return kept


class Batcher:
    def __init__(self, max_records: int, max_bytes: int, linger_ms: int):
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.linger_ms = linger_ms
        self.buffers: dict[str, _Buffer] = {}

    def add(self, topic: str, records: Iterable[Record], now: float) -> None:
        buffer = self.buffers.setdefault(topic, _Buffer(now))
        for record in records:
            buffer.add(record)

    def topics(self) -> list[str]:
        """Topics with records waiting."""
        return list(self.buffers)

    def due(self, topic: str, now: float, caught_up: bool) -> bool:
        buffer = self.buffers.get(topic)
        if buffer is None or not buffer.records:
            return False
        waited_ms = (now - buffer.first_at) * 1000
        return (
            len(buffer.records) >= self.max_records
            or buffer.total >= self.max_bytes
            or waited_ms >= self.linger_ms
            or caught_up
        )

    def linger_left_ms(self, topics: Iterable[str], now: float) -> float | None:
        """How long until a batch of these topics is due by its linger (None: nothing
        buffered), counted from its oldest record."""
        waiting = [self.buffers[t].first_at for t in topics if t in self.buffers]
        if not waiting:
            return None
        return self.linger_ms - (now - min(waiting)) * 1000

    def take(self, topic: str) -> list[Batch]:
        """The topic's buffered records as batches of at most `max_records` and `max_bytes`
        (a record larger than that travels alone); the buffer is emptied."""
        buffer = self.buffers.pop(topic, None)
        if buffer is None:
            return []
        return [
            Batch(
                topic,
                buffer.records[start:stop],
                "".join(buffer.lines[start:stop]),
                sum(buffer.sizes[start:stop]),
            )
            for start, stop in batches(buffer.sizes, self.max_records, self.max_bytes)
        ]

    def drop(self, partitions: set[TopicPartition]) -> None:
        """Forget the buffered records of partitions given up: their next owner reads them."""
        for topic, buffer in list(self.buffers.items()):
            kept = buffer.without(partitions)
            if kept.records:
                self.buffers[topic] = kept
            else:
                del self.buffers[topic]


def audit_payloads(published: list[Batch], max_records: int, max_bytes: int) -> list[str]:
    """The audit tasks' payloads for batches published together: consecutive batches' lines
    joined while they stay within `max_records` and `max_bytes` (as one batch would). At a
    steady load a loop's small batches of three topics become one audit task instead of three;
    under a backlog each full batch still has its own."""
    groups = batches(
        [b.size for b in published], max_records, max_bytes, [len(b.records) for b in published]
    )
    return ["".join(b.lines for b in published[start:stop]) for start, stop in groups]


def batches(
    sizes: list[int], max_count: int, max_bytes: int, counts: list[int] | None = None
) -> list[tuple[int, int]]:
    """[start, stop) ranges that split items of these sizes (each `counts` records, default
    one) into groups of at most `max_count` records and `max_bytes` bytes; an item larger than
    that goes alone."""
    ranges = []
    start, total, records = 0, 0, 0
    for i, size in enumerate(sizes):
        count = 1 if counts is None else counts[i]
        if i > start and (records + count > max_count or total + size > max_bytes):
            ranges.append((start, i))
            start, total, records = i, 0, 0
        total += size
        records += count
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges
