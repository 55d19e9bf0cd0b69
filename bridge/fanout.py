"""Kafka -> Celery fan-out with at-least-once delivery.

Records are buffered per topic and flushed as two tasks (the store's persistence task and the
audit task) when a buffer reaches BRIDGE_BATCH_SIZE records or BRIDGE_BATCH_MAX_BYTES (an upper
bound of the task message's size, so that no task outgrows RabbitMQ's message size limit; a record
larger than that travels alone), or its oldest record waited BRIDGE_BATCH_WAIT_MS. Publisher
confirms make each publish return only once RabbitMQ holds the message, so an offset is committed
only after every record below it was confirmed. A publish that fails is never committed: the
partitions are rewound to the first unconfirmed record and retried.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict

from celery import Celery
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from bookstore.config import Settings
from bookstore.errors import retry_delay
from bookstore.records import Record, wire_size
from bookstore.topics import AUDIT_QUEUE, AUDIT_TASK, ENTITY_TOPICS, STORE_QUEUE, STORE_TASK
from bridge.backpressure import QueueDepths

log = logging.getLogger("bridge")


class Bridge:
    def __init__(self, settings: Settings, app: Celery, consumer: KafkaConsumer):
        self.settings = settings
        self.app = app
        self.consumer = consumer
        self.stopping = False
        self.buffers: dict[str, list[Record]] = defaultdict(list)
        self.sizes: dict[str, list[int]] = defaultdict(list)  # wire_size() of each buffered record
        self.first_buffered_at: dict[str, float] = {}
        self.confirmed: dict[TopicPartition, int] = {}  # next offset, all below confirmed
        self.committed: dict[TopicPartition, int] = {}
        self.failed_publishes = 0  # in a row: the backoff's attempt number
        self.depths = QueueDepths(app, settings.bridge_max_queue_depth)

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(list(ENTITY_TOPICS), listener=_Rebalance(self))
        log.info(
            "bridge consuming %s as group %s",
            ", ".join(ENTITY_TOPICS),
            self.settings.bridge_group_id,
        )
        while not self.stopping:
            self.apply_backpressure()
            polled = self.consumer.poll(
                timeout_ms=self._poll_timeout_ms(), max_records=self.settings.bridge_batch_size
            )
            now = time.monotonic()
            for tp, messages in polled.items():
                if messages:
                    self.first_buffered_at.setdefault(tp.topic, now)
                    records = [Record.from_kafka(m) for m in messages]
                    self.buffers[tp.topic].extend(records)
                    self.sizes[tp.topic].extend(wire_size(r) for r in records)
                    log.debug("buffered %d records of %s", len(messages), tp.topic)
            for topic in list(self.buffers):
                if self._due(topic, now):
                    self.flush(topic)
            self.commit()
        self.shutdown()

    def stop(self) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        """Finish in-flight work: flush what is buffered, commit what is confirmed, close."""
        log.info("bridge stopping: flushing and committing")
        self.flush_all()
        self.commit()
        self.consumer.close(autocommit=False)
        log.info("bridge stopped")

    # -- batching --------------------------------------------------------------------------
    def _due(self, topic: str, now: float) -> bool:
        buffered = self.buffers.get(topic)
        if not buffered:
            return False
        if len(buffered) >= self.settings.bridge_batch_size:
            return True
        if sum(self.sizes[topic]) >= self.settings.bridge_batch_max_bytes:
            return True
        waited_ms = (now - self.first_buffered_at[topic]) * 1000
        return waited_ms >= self.settings.bridge_batch_wait_ms

    def _poll_timeout_ms(self) -> int:
        waiting = [t for t in self.first_buffered_at if not self.depths.holds(t)]
        if not waiting:
            return 100 if self.first_buffered_at else 500
        oldest = min(self.first_buffered_at[t] for t in waiting)
        remaining = self.settings.bridge_batch_wait_ms - (time.monotonic() - oldest) * 1000
        return max(0, min(500, int(remaining)))

    def flush_all(self) -> None:
        for topic in list(self.buffers):
            self.flush(topic, force=True)

    def flush(self, topic: str, force: bool = False) -> bool:
        """Publish the topic's buffer as a persistence task and an audit task, both confirmed.

        While backpressure holds the topic, its records stay buffered (uncommitted) unless
        `force`d out, as when stopping or giving partitions up.
        """
        if self.depths.holds(topic) and not force:
            return False
        records = self.buffers.pop(topic, [])
        sizes = self.sizes.pop(topic, [])
        self.first_buffered_at.pop(topic, None)
        for start, stop in batches(
            sizes, self.settings.bridge_batch_size, self.settings.bridge_batch_max_bytes
        ):
            batch = records[start:stop]
            wire = [r.to_wire() for r in batch]
            try:
                self._publish(STORE_TASK[topic], STORE_QUEUE[topic], wire)
                self._publish(AUDIT_TASK, AUDIT_QUEUE, wire)
            except Exception as exc:  # broker down, connection lost, nack: rewind, retry later
                self._rewind(records[start:])
                self._back_off(f"publishing {len(batch)} {topic} records failed: {exc}")
                return False
            self.failed_publishes = 0
            for r in batch:
                tp = TopicPartition(r.topic, r.partition)
                self.confirmed[tp] = max(self.confirmed.get(tp, 0), r.offset + 1)
        return True

    def _publish(self, task: str, queue: str, wire: list[dict]) -> None:
        # With broker_transport_options confirm_publish, this returns once RabbitMQ confirmed.
        self.app.send_task(task, args=[wire], queue=queue, routing_key=queue)
        self.depths.published(queue)

    def _rewind(self, records: list[Record]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def _back_off(self, why: str) -> None:
        delay = retry_delay(self.failed_publishes, self.settings.retry_max_seconds, base=0.5)
        self.failed_publishes += 1
        log.warning("%s; retrying in %.1fs", why, delay)
        deadline = time.monotonic() + delay
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(0.1)

    # -- offsets ---------------------------------------------------------------------------
    def commit(self) -> None:
        pending = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in self.confirmed.items()
            if self.committed.get(tp) != offset
        }
        if not pending:
            return
        try:
            self.consumer.commit(offsets=pending)
        except KafkaError as exc:  # e.g. a rebalance in progress: the next commit covers it
            log.warning("offset commit failed (%s); will retry", exc)
            return
        self.committed.update({tp: om.offset for tp, om in pending.items()})

    def give_up(self, partitions: set[TopicPartition], commit: bool) -> None:
        """Partitions this bridge no longer holds (rebalance listener: must not block)."""
        if commit:
            pending = {
                tp: OffsetAndMetadata(self.confirmed[tp], "", -1)
                for tp in partitions
                if tp in self.confirmed and self.committed.get(tp) != self.confirmed[tp]
            }
            if pending:
                self.consumer.commit_async(offsets=pending, callback=_log_failed_commit)
        for topic in list(self.buffers):
            kept = [
                (r, size)
                for r, size in zip(self.buffers[topic], self.sizes[topic], strict=True)
                if TopicPartition(r.topic, r.partition) not in partitions
            ]
            self.buffers[topic] = [r for r, _ in kept]
            self.sizes[topic] = [size for _, size in kept]
            if not kept:
                del self.buffers[topic], self.sizes[topic]
                self.first_buffered_at.pop(topic, None)
        for tp in partitions:
            self.confirmed.pop(tp, None)
            self.committed.pop(tp, None)

    # -- backpressure ----------------------------------------------------------------------
    def apply_backpressure(self) -> None:
        """Pause the partitions feeding a queue that is too deep; resume once it drained."""
        self.depths.refresh()
        assigned = self.consumer.assignment()
        pause = [tp for tp in assigned if self.depths.holds(tp.topic)]
        resume = [tp for tp in assigned if not self.depths.holds(tp.topic)]
        if pause:
            self.consumer.pause(*pause)
        if resume:
            self.consumer.resume(*resume)
            _unpark_resumed(self.consumer)


def _log_failed_commit(offsets, result) -> None:
    if isinstance(result, Exception):
        log.warning(
            "offset commit of revoked partitions failed (%s): their next owner will "
            "read some records again",
            result,
        )


def batches(sizes: list[int], max_count: int, max_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) ranges that split records of these sizes into batches of at most
    `max_count` records and `max_bytes` bytes; a record larger than `max_bytes` goes alone."""
    ranges = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_count or total + size > max_bytes):
            ranges.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def _unpark_resumed(consumer: KafkaConsumer) -> None:
    """Work around a stall in kafka-python 3.0.12's fetcher.

    Records fetched for a partition that is then paused are parked, and handed back after resume()
    only when the fetcher's in-line slot is None; but an exhausted slot is never reset to None, so
    a resumed partition could stay parked (and unfetched) forever. Emptying an exhausted slot lets
    the next poll() restore the parked records. Harmless if the internals change.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    in_line = getattr(fetcher, "_next_partition_records", None)
    if in_line is not None and not in_line and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None


class _Rebalance(ConsumerRebalanceListener):
    """Give partitions up without blocking: kafka-python 3 calls this on its I/O thread, where a
    blocking consumer call raises and a slow one stops the heartbeats.

    Revoked partitions: their confirmed offsets are committed asynchronously (sent before the
    group's next JoinGroup, on the same connection) and their buffered, unpublished records are
    dropped: the partitions' next owner reads them again from the committed offset. Lost ones
    (this bridge was evicted): the same without a commit, which would be refused.
    """

    def __init__(self, bridge: Bridge):
        self.bridge = bridge

    def on_partitions_revoked(self, revoked):
        self.bridge.give_up(set(revoked), commit=True)

    def on_partitions_lost(self, lost):
        self.bridge.give_up(set(lost), commit=False)

    def on_partitions_assigned(self, assigned):
        log.info("assigned %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in assigned))
