"""The bridge's pure parts, without Kafka or RabbitMQ: batching, offsets, backpressure."""

from __future__ import annotations

import json

from kafka.structs import TopicPartition

from bookstore.entities import EntityTable
from bookstore.offsets import OffsetTracker, rewind_points
from bookstore.records import Record, audit_line, from_lines
from bridge.backpressure import Holds
from bridge.batching import Batcher, audit_payloads
from bridge.metrics import DeadLetterCount


def record(partition: int, offset: int, value: str = "{}", topic: str = "customers") -> Record:
    return Record(topic, partition, offset, None, 1_700_000_000_000, value.encode())


def records(partition: int, offsets: range, **kw) -> list[Record]:
    return [record(partition, o, **kw) for o in offsets]


# --- batching ----------------------------------------------------------------------------------


def test_a_batch_is_due_when_full_by_count_or_bytes_when_it_waited_or_when_caught_up():
    by_count = Batcher(max_records=3, max_bytes=10**6, linger_ms=200)
    by_count.add("customers", records(0, range(2)), now=0.0)
    assert not by_count.due("customers", 0.1, caught_up=False)
    assert by_count.due("customers", 0.1, caught_up=True)  # nothing more to wait for
    assert by_count.due("customers", 0.2, caught_up=False)  # its oldest record waited 200 ms
    by_count.add("customers", records(0, range(2, 3)), now=0.15)
    assert by_count.due("customers", 0.15, caught_up=False)  # 3 records
    assert not by_count.due("books", 10.0, caught_up=True)  # nothing buffered

    by_bytes = Batcher(max_records=1000, max_bytes=300, linger_ms=10**6)
    by_bytes.add("customers", [record(0, 0, "x" * 400)], now=0.0)
    assert by_bytes.due("customers", 0.0, caught_up=False)


def test_take_splits_by_count_and_bytes_a_large_record_alone_lines_encoded_once():
    batcher = Batcher(max_records=2, max_bytes=1000, linger_ms=200)
    small = records(0, range(3), value='{"a": 1}')
    large = record(1, 7, json.dumps({"big": "x" * 2000}))
    batcher.add("customers", [*small, large, record(1, 8)], now=0.0)
    batches = batcher.take("customers")
    assert [[(r.partition, r.offset) for r in b.records] for b in batches] == [
        [(0, 0), (0, 1)],
        [(0, 2)],
        [(1, 7)],  # larger than max_bytes: alone
        [(1, 8)],
    ]
    for batch in batches:
        assert batch.lines == "".join(map(audit_line, batch.records))
        assert from_lines(batch.lines) == batch.records  # what the tasks decode
    assert batcher.take("customers") == [] and batcher.topics() == []


def test_batches_published_together_share_audit_tasks_within_one_batchs_limits():
    batcher = Batcher(max_records=4, max_bytes=1000, linger_ms=200)
    for topic in ("customers", "books", "orders"):  # a steady load: a record or two each
        batcher.add(topic, records(0, range(2), topic=topic), now=0.0)
    small = [b for t in batcher.topics() for b in batcher.take(t)]
    payloads = audit_payloads(small, max_records=4, max_bytes=1000)
    assert len(payloads) == 2  # 6 records, at most 4 per audit task: 2 + 2 | 2
    assert from_lines("".join(payloads)) == [r for b in small for r in b.records]  # all, in order
    assert len(audit_payloads(small, max_records=100, max_bytes=1000)) == 1

    batcher.add("customers", [record(0, 0, json.dumps({"big": "x" * 2000})), record(0, 1)], 0.0)
    alone = batcher.take("customers")  # one over max_bytes, one small
    assert audit_payloads(alone, max_records=100, max_bytes=1000) == [b.lines for b in alone]


def test_partitions_revoked_mid_batch_lose_their_buffered_records_and_only_theirs():
    batcher = Batcher(max_records=100, max_bytes=10**6, linger_ms=200)
    batcher.add("customers", records(0, range(3)) + records(1, range(3)), now=0.0)
    batcher.add("books", records(1, range(2), topic="books"), now=0.0)
    batcher.drop({TopicPartition("customers", 1), TopicPartition("books", 1)})
    assert batcher.topics() == ["customers"]  # books had nothing else: gone
    [batch] = batcher.take("customers")
    assert [(r.partition, r.offset) for r in batch.records] == [(0, 0), (0, 1), (0, 2)]


def test_linger_left_counts_from_the_oldest_waiting_record():
    batcher = Batcher(max_records=100, max_bytes=10**6, linger_ms=200)
    assert batcher.linger_left_ms(["customers"], 1.0) is None
    batcher.add("customers", records(0, range(1)), now=1.0)
    batcher.add("books", records(0, range(1), topic="books"), now=1.05)
    assert round(batcher.linger_left_ms(["customers", "books"], 1.1)) == 100
    assert round(batcher.linger_left_ms(["books"], 1.1)) == 150


def test_a_caught_up_batch_leaves_at_once_a_growing_one_at_its_linger_a_full_one_at_once():
    """The wait for company is Kafka's (bridge/fetch_wait.py), not the batcher's: waiting twice
    added twice the latency for the same batches (docs/performance.md)."""
    batcher = Batcher(max_records=3, max_bytes=10**6, linger_ms=200)
    batcher.add("customers", records(0, range(2)), now=1.0)
    assert batcher.due("customers", 1.0, caught_up=True)
    assert not batcher.due("customers", 1.1, caught_up=False)  # more coming: up to the linger
    assert batcher.due("customers", 1.21, caught_up=False)
    batcher.add("customers", records(0, range(2, 3)), now=1.0)
    assert batcher.due("customers", 1.0, caught_up=False)  # full: no wait at all


# --- offsets -----------------------------------------------------------------------------------


def test_only_confirmed_offsets_are_committed_and_each_once():
    offsets = OffsetTracker()
    p0, p1 = TopicPartition("customers", 0), TopicPartition("customers", 1)
    assert offsets.to_commit() == {}
    offsets.confirm(records(0, range(5)) + records(1, range(10, 12)))
    assert offsets.to_commit() == {p0: 5, p1: 12}
    assert offsets.to_commit([p1]) == {p1: 12}
    offsets.committed_now({p0: 5})
    assert offsets.to_commit() == {p1: 12}
    offsets.confirm(records(0, range(5, 6)))
    assert offsets.to_commit() == {p0: 6, p1: 12}
    assert offsets.done(p0) == 6


def test_after_a_partial_publish_every_partition_rewinds_to_its_first_unconfirmed_record():
    """Three batches of one topic across two partitions: the first is confirmed, the second's
    publish fails. Nothing past the first batch may be committed; each partition is read again
    from its first record that was not confirmed."""
    batcher = Batcher(max_records=3, max_bytes=10**6, linger_ms=200)
    batcher.add("customers", [record(p, o) for o in range(20, 23) for p in (0, 1)], now=0.0)
    first, *failed = batcher.take("customers")
    offsets = OffsetTracker()
    offsets.confirm(first.records)  # (0,20) (1,20) (0,21)
    unconfirmed = [r for b in failed for r in b.records]
    assert rewind_points(unconfirmed) == {
        TopicPartition("customers", 0): 22,
        TopicPartition("customers", 1): 21,
    }
    assert offsets.to_commit() == {
        TopicPartition("customers", 0): 22,
        TopicPartition("customers", 1): 21,
    }


def test_partitions_given_up_are_forgotten():
    offsets = OffsetTracker()
    p0 = TopicPartition("orders", 0)
    offsets.confirm(records(0, range(3), topic="orders"))
    offsets.committed_now({p0: 3})
    offsets.forget([p0])
    assert offsets.to_commit() == {} and offsets.done(p0) is None


# --- backpressure ------------------------------------------------------------------------------


def test_a_deep_queue_holds_its_topic_until_it_drained_to_half():
    holds = Holds(max_depth=10, table=EntityTable())
    holds.observed({"postgres": 10})
    assert not holds.holds("customers")
    holds.published("postgres")  # 11 estimated, between two readings
    assert holds.holds("customers") and not holds.holds("books")
    holds.observed({"postgres": 6})  # drained, but not to half: still held
    assert holds.holds("customers")
    holds.observed({"postgres": 5})  # half: resume
    assert not holds.holds("customers")


def test_a_deep_audit_queue_holds_every_topic_and_zero_turns_backpressure_off():
    holds = Holds(max_depth=4, table=EntityTable())
    holds.observed({"audit": 9})
    assert all(holds.holds(t) for t in ("customers", "books", "orders"))
    off = Holds(max_depth=0, table=EntityTable())
    for _ in range(100):
        off.published("redis")
    assert not off.holds("orders")


# --- the dead-letter gauge ---------------------------------------------------------------------


def test_the_dead_letter_count_is_read_when_scraped_at_most_every_period_and_kept_on_failure():
    answers = iter([ConnectionError("Kafka away"), 7, ConnectionError("again")])

    def count() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    gauge = DeadLetterCount(count, every=0.0)
    assert list(gauge.collect()) == []  # Kafka never answered: no figure rather than a wrong one
    [family] = gauge.collect()
    assert family.samples[0].value == 7
    [family] = gauge.collect()  # Kafka away again: the last figure stands
    assert family.samples[0].value == 7
    slow = DeadLetterCount(lambda: 1, every=3600.0)
    list(slow.collect())
    slow.count = lambda: 2
    assert [f.samples[0].value for f in slow.collect()] == [1]  # not read again within the period
