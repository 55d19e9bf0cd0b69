"""Offset bookkeeping, without Kafka: what may be committed, and where to read again.

Per partition, `confirmed` is the next offset below which every record is done (the bridge:
RabbitMQ confirmed its tasks; a rebuild: its store wrote it), `committed` the last offset Kafka
accepted. Only confirmed offsets are ever committed (at-least-once). A publish that failed
rewinds each partition to the first record not confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka.structs import OffsetAndMetadata, TopicPartition

from bookstore.records import Record


def _tp(record: Record) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


class OffsetTracker:
    def __init__(self) -> None:
        self.confirmed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}

    def confirm(self, records: Iterable[Record]) -> None:
        """These records are done (records of a partition arrive in order)."""
        for r in records:
            tp = _tp(r)
            self.confirmed[tp] = max(self.confirmed.get(tp, 0), r.offset + 1)

    def to_commit(self, partitions: Iterable[TopicPartition] | None = None) -> dict:
        """{partition: offset} confirmed and not yet committed (of `partitions`, or all)."""
        wanted = self.confirmed if partitions is None else set(partitions)
        return {
            tp: offset
            for tp, offset in self.confirmed.items()
            if tp in wanted and self.committed.get(tp) != offset
        }

    def committed_now(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def done(self, tp: TopicPartition) -> int | None:
        """The next offset this bridge owes nothing below (for the lag), if it knows one."""
        return self.confirmed.get(tp, self.committed.get(tp))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.confirmed.pop(tp, None)
            self.committed.pop(tp, None)


def rewind_points(unconfirmed: Iterable[Record]) -> dict[TopicPartition, int]:
    """Where each partition must be read again from: its first record not confirmed."""
    first: dict[TopicPartition, int] = {}
    for r in unconfirmed:
        tp = _tp(r)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    return first


def for_commit(offsets: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    """{partition: offset} as kafka-python's `commit` takes it."""
    return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
