"""Kafka -> Celery fan-out with at-least-once delivery: the loop that wires Kafka and Celery to
the bridge's pure parts (bridge.batching, bookstore.offsets, bridge.backpressure).

Records are buffered per topic and flushed as two tasks (the store's persistence task and the
audit task, carrying the same lines, encoded once) when a batch is due (bridge.batching).
Publisher confirms make each publish return only once RabbitMQ holds the message, so an offset is
committed only after every record below it was confirmed. A publish that fails is never
committed: the partitions are rewound to the first unconfirmed record and retried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from bookstore.broker import AUDIT_TASK, persist_task
from bookstore.config import Settings
from bookstore.entities import AUDIT_QUEUE, topics
from bookstore.errors import retry_delay
from bookstore.offsets import OffsetTracker, for_commit, rewind_points
from bookstore.records import Record
from bridge import metrics
from bridge.backpressure import QueueDepths
from bridge.batching import Batcher, audit_payloads
from bridge.fetch_wait import FetchWait
from bridge.publisher import TaskPublisher

log = logging.getLogger(__name__)


COMMIT_EVERY = 0.2  # seconds: offsets are committed at most this often (and when stopping)
POLL_RETRY = 1.0  # seconds between polls while Kafka cannot serve the group


class Bridge:
    def __init__(self, settings: Settings, consumer: KafkaConsumer):
        self.settings = settings
        self.names = topics(settings)
        self.consumer = consumer
        self.stopped = threading.Event()
        self.batcher = Batcher(
            settings.bridge_batch_size,
            settings.bridge_batch_max_bytes,
            settings.bridge_batch_wait_ms,
        )
        self.caught_up = False  # the last poll returned all the consumer had: no reason to wait
        self.fetch_wait = FetchWait(consumer, settings.bridge_batch_min_wait_ms)
        self.committed_at = 0.0
        self.offsets = OffsetTracker()
        self.failed_publishes = 0  # in a row: the backoff's attempt number
        self.depths = QueueDepths(settings)
        self.publisher = TaskPublisher(settings)

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(list(self.names.entities), listener=_Rebalance(self))
        log.info(
            "bridge consuming %s as group %s",
            ", ".join(self.names.entities),
            self.settings.bridge_group_id,
        )
        while not self.stopped.is_set():
            self.apply_backpressure()
            try:
                polled = self.consumer.poll(
                    timeout_ms=self._poll_timeout_ms(), max_records=self.settings.bridge_batch_size
                )
            except KafkaError as exc:
                # kafka-python 3 raises out of poll() when no broker answers for the group's
                # coordinator (two of three nodes down): a broker outage, retried, never fatal
                if not exc.retriable:
                    raise
                log.warning("polling Kafka failed (%s); retrying in %.0fs", exc, POLL_RETRY)
                self._pause(POLL_RETRY)
                continue
            now = time.monotonic()
            polled_count = 0
            for tp, messages in polled.items():
                if messages:
                    self.batcher.add(tp.topic, map(Record.from_kafka, messages), now)
                    polled_count += len(messages)
                    metrics.CONSUMED.labels(tp.topic).inc(len(messages))
                    log.debug("buffered %d records of %s", len(messages), tp.topic)
            self.fetch_wait.polled(polled_count)
            self.caught_up = (
                self.settings.bridge_flush_when_idle
                and polled_count < self.settings.bridge_batch_size
            )
            self.flush(
                [t for t in self.batcher.topics() if self.batcher.due(t, now, self.caught_up)]
            )
            if now - self.committed_at >= COMMIT_EVERY:
                self.commit()
                self.measure_lag()
        self.shutdown()

    def stop(self) -> None:
        """Ask the loop to finish (it flushes and commits first). Safe from a signal handler:
        the event is set from a thread of its own, since setting it in the main thread could
        interrupt that thread's own wait while it holds the event's lock, and hang."""
        threading.Thread(target=self.stopped.set, name="bridge-stop").start()

    def shutdown(self) -> None:
        """Finish in-flight work: flush what is buffered, commit what is confirmed, close."""
        log.info("bridge stopping: flushing and committing")
        self.flush_all()
        self.commit()
        self.consumer.close(autocommit=False)
        self.publisher.close()
        log.info("bridge stopped")

    # -- batching --------------------------------------------------------------------------
    def _poll_timeout_ms(self) -> int:
        waiting = [t for t in self.batcher.topics() if not self.held(t)]
        left = self.batcher.linger_left_ms(waiting, time.monotonic())
        if left is None:
            return self.fetch_wait.poll_timeout_ms(100 if self.batcher.topics() else 500)
        return max(0, min(500, int(left)))

    def flush_all(self) -> None:
        self.flush(self.batcher.topics(), force=True)

    def flush(self, topics: list[str], force: bool = False) -> None:
        """Publish these topics' buffers: a persistence task per batch, then audit tasks for
        all of them together (`audit_payloads`: at a steady load one for the three topics, not
        one each), every one confirmed before any of their offsets counts as done.

        While backpressure holds a topic, its records stay buffered (uncommitted) unless
        `force`d out, as when stopping or giving partitions up. If a publish fails, every
        record taken here is read again (a task already confirmed then runs twice: the stores
        are idempotent).
        """
        batches = [b for t in topics if force or not self.held(t) for b in self.batcher.take(t)]
        if not batches:
            return
        try:
            for batch in batches:
                metrics.BATCH_RECORDS.observe(len(batch.records))
                metrics.BATCH_BYTES.observe(len(batch.lines))
                entity = self.names.entity(batch.topic)
                self._publish(persist_task(entity), entity.queue, batch.lines)
            limits = (self.settings.bridge_batch_size, self.settings.bridge_batch_max_bytes)
            for payload in audit_payloads(batches, *limits):
                self._publish(AUDIT_TASK, AUDIT_QUEUE, payload)
        except Exception as exc:  # broker down, connection lost, nack: rewind, retry later
            self._rewind([r for b in batches for r in b.records])
            records = sum(len(b.records) for b in batches)
            self._back_off(f"publishing {records} records failed: {exc}")
            return
        self.failed_publishes = 0
        for batch in batches:
            metrics.PUBLISHED.labels(batch.topic).inc(len(batch.records))
            self.offsets.confirm(batch.records)

    def _publish(self, task: str, queue: str, lines: str) -> None:
        # With broker_transport_options confirm_publish, this returns once RabbitMQ confirmed.
        with metrics.PUBLISH_SECONDS.labels(queue).time():
            self.publisher.publish(task, queue, lines)
        self.depths.published(queue)

    def _rewind(self, records: list[Record]) -> None:
        metrics.REWINDS.inc()
        assigned = self.consumer.assignment()
        for tp, offset in rewind_points(records).items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def _back_off(self, why: str) -> None:
        delay = retry_delay(self.failed_publishes, self.settings.retry_max_seconds, base=0.5)
        self.failed_publishes += 1
        log.warning("%s; retrying in %.1fs", why, delay)
        self._pause(delay)

    def _pause(self, seconds: float) -> None:
        """Wait, but not past a stop request."""
        self.stopped.wait(seconds)

    # -- offsets ---------------------------------------------------------------------------
    def commit(self) -> None:
        self.committed_at = time.monotonic()
        pending = self.offsets.to_commit()
        if not pending:
            return
        try:
            self.consumer.commit(offsets=for_commit(pending))
        except KafkaError as exc:  # e.g. a rebalance in progress: the next commit covers it
            metrics.COMMIT_FAILURES.inc()
            log.warning("offset commit failed (%s); will retry", exc)
            return
        self.offsets.committed_now(pending)

    def give_up(self, partitions: set[TopicPartition], commit: bool) -> None:
        """Partitions this bridge no longer holds (rebalance listener: must not block)."""
        if commit:
            pending = self.offsets.to_commit(partitions)
            if pending:
                self.consumer.commit_async(offsets=for_commit(pending), callback=_log_failed_commit)
        self.batcher.drop(partitions)
        self.offsets.forget(partitions)
        for tp in partitions:
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(tp.topic, str(tp.partition))

    def measure_lag(self) -> None:
        """Per partition: its end offset as last fetched, minus the offset RabbitMQ confirmed."""
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                done = self.offsets.done(tp)
                lag = end - done if done is not None else end - self.consumer.position(tp)
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, lag))

    def report_state(self) -> None:
        """Log where the bridge stands on each assigned partition and what it waits on: the
        offset it fetches next, the end Kafka last told it, the offset RabbitMQ confirmed,
        whether it may be fetched (not paused, a valid position) and its leader as the bridge
        knows it; then the brokers it awaits a fetch from. Read from kafka-python's own state,
        without a request (a stalled client must not be asked to do more). Asked for with
        SIGUSR1 (python -m bridge), beside every thread's stack."""
        subscription = getattr(self.consumer, "_subscription", None)
        states = getattr(subscription, "assignment", {})
        cluster = getattr(getattr(self.consumer, "_client", None), "cluster", None)
        for tp, state in sorted(dict(states).items()):
            position = getattr(state, "position", None)
            log.warning(
                "state %s[%d]: next %s, end %s, confirmed %s, fetchable %s (awaiting validation "
                "%s, pending revocation %s), leader %s",
                tp.topic,
                tp.partition,
                getattr(position, "offset", position),
                getattr(state, "highwater", "?"),
                self.offsets.done(tp),
                state.is_fetchable() if hasattr(state, "is_fetchable") else "?",
                getattr(state, "awaiting_validation", "?"),
                getattr(state, "_pending_revocation", "?"),
                cluster.leader_for_partition(tp) if cluster is not None else "?",
            )
        fetcher = getattr(self.consumer, "_fetcher", None)
        pending = getattr(fetcher, "_nodes_with_pending_fetch_requests", None)
        log.warning(
            "state: records buffered for %s, fetches pending from brokers %s, held %s",
            self.batcher.topics() or "none",
            sorted(pending) if pending is not None else "?",
            [t for t in self.names.entities if self.held(t)] or "none",
        )

    # -- backpressure ----------------------------------------------------------------------
    def held(self, topic: str) -> bool:
        """Whether the records of `topic` must wait: backpressure holds its entity's queue."""
        return self.depths.holds(self.names.entity(topic).name)

    def apply_backpressure(self) -> None:
        """Pause the partitions feeding a queue that is too deep; resume once it drained."""
        self.depths.refresh()
        assigned = self.consumer.assignment()
        pause = [tp for tp in assigned if self.held(tp.topic)]
        resume = [tp for tp in assigned if not self.held(tp.topic)]
        metrics.PAUSED.set(len(pause))
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
