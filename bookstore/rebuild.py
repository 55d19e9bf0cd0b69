"""Rebuild a store from the log: read its topics from the first offset, store as the workers do.

The records go through the workers' own code (bookstore.persister: the same validation, the same
idempotent writes, batches of at most BRIDGE_BATCH_SIZE records), so a rebuilt store is what
the pipeline wrote. Records the pipeline dead-lettered (the dead-letter topic names them) are
skipped: a store refusal depends on the store's state when the record came (an e-mail already
taken, a key of the wrong type), and the pipeline's decision is the log's. Re-publishing a dead
letter (`dead-letters replay`) puts it in the log again, so a rebuild then includes it. Records
the rebuild refuses itself are counted, not published again. A store of every record (the
audit log) takes them all, as received, those the pipeline refused too.

Progress lives with the data, as Kafka Connect's sinks keep it: after every stored batch the
target store records how far it has read (`keep_progress`), so a rebuild cut off by Ctrl-C or a
crash resumes where it stopped and running it again later catches up, while a target emptied,
dropped, restored from an older backup or never built (another namespace, another Redis
database) starts from the first offset: what it holds says where it stands. Progress names each
topic by its id as well, so a log deleted and created again is read again from its start.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bookstore import dead_letter_topic
from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.persister import Outcome, Persister
from bookstore.records import Record


@dataclass
class Summary:
    store: str
    read: int = 0
    stored: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    resumed: bool = False
    examples: list[str] = field(default_factory=list)  # a few dead letters: where and why

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


def position(topic: str, topic_id: str, partition: int) -> str:
    """A partition's key in a store's progress: of this very topic (its id), so that a topic
    deleted and created again (a new log, offsets from 0) is read again from its first offset."""
    return f"{topic}@{topic_id}:{partition}"


def topic_ids(settings: Settings, names: list[str]) -> dict[str, str]:
    """Each topic's id (Kafka gives every topic one at creation)."""
    from bookstore.kafka import admin_client

    admin = admin_client(settings)
    try:
        return {t["name"]: t["topic_id"] for t in admin.describe_topics(names)}
    finally:
        admin.close()


def rebuild(
    settings: Settings,
    store: str,
    from_start: bool = False,
    refused: set[tuple[str, int, int]] | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_batch: Callable[[int], None] = lambda records: None,
) -> Summary:
    """Bring `store` (by name, as `settings` locate it) up to the end its topics have now.

    A target that records no progress, or `from_start`, is emptied and read from the first
    offset; otherwise the run resumes from the progress it records. `refused`: the origins of
    the pipeline's dead letters (read from their topic when not given: a run over several stores
    reads them once). `on_start(total)` gets the number of records to read, `on_batch(n)` each
    batch's. Raises what a server that is away raises: the rebuild can be run again once it is
    back.
    """
    from kafka import TopicPartition

    from bookstore.kafka import new_consumer
    from bookstore.offsets import OffsetTracker

    spec = settings.entities.store(store)
    summary = Summary(store)
    started = time.monotonic()
    consumer = new_consumer(
        settings,
        group_id=None,  # the progress is the target's, not a group's
        client_id="bookstore-rebuild",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    persister = Persister(settings)
    tracker = OffsetTracker()
    try:
        target = persister.store_for(store)
        names = [topics(settings).of(e) for e in spec.entities]
        ids = topic_ids(settings, names)
        partitions = [
            TopicPartition(t, p)
            for t in names
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)

        def key(tp: TopicPartition) -> str:
            return position(tp.topic, ids[tp.topic], tp.partition)

        done = {} if from_start else target.progress()
        summary.resumed = any(key(tp) in done for tp in partitions)
        if not summary.resumed:
            target.clear()
            done = {}
        for tp in partitions:
            offset = done.get(key(tp))
            if offset is None or offset > ends[tp]:  # not read yet, or a log since cut shorter
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        on_start(sum(end - consumer.position(tp) for tp, end in ends.items()))
        if spec.every_record:  # the audit log keeps what the pipeline refused too
            refused = set()
        elif refused is None:
            refused = dead_letter_topic.origins(settings)
        for batch in _in_kafka_order(consumer, ends, settings.bridge_batch_size):
            _judge_and_store(persister, store, batch, refused, summary)
            tracker.confirm(batch)
            done = {**done, **{key(tp): o for tp, o in tracker.confirmed.items()}}
            target.keep_progress(done)
            summary.read += len(batch)
            on_batch(len(batch))
    finally:
        persister.close()
        consumer.close()
    summary.seconds = time.monotonic() - started
    return summary


def _judge_and_store(
    persister: Persister,
    store: str,
    batch: list[Record],
    refused: set[tuple[str, int, int]],
    summary: Summary,
) -> None:
    """Store the batch as the workers do, but for the records the pipeline dead-lettered."""
    judged = [r for r in batch if (r.topic, r.partition, r.offset) not in refused]
    summary.dead_letters += len(batch) - len(judged)
    outcome = persister.store(store, judged) if judged else Outcome()
    summary.stored += outcome.stored
    summary.dead_letters += len(outcome.dead)
    for dl in outcome.dead[: max(0, 5 - len(summary.examples))]:
        summary.examples.append(f"{dl.record.coordinates} ({dl.stage}): {dl.reason}")


def _in_kafka_order(consumer: Any, ends: dict[Any, int], size: int) -> Iterator[list[Record]]:
    """Batches of up to `size` records merged across partitions in Kafka order (timestamp,
    partition, offset), up to `ends`: the order the pipeline met them in, which decides who wins
    when two records conflict across keys (an e-mail claimed by two customers). Fetching stops
    while every partition has records buffered. (Pausing the others instead would bound memory
    tighter, but kafka-python 3.0 never fetches a paused partition's remaining records again.)"""
    buffers: dict[Any, deque[Record]] = {
        tp: deque() for tp, end in ends.items() if consumer.position(tp) < end
    }
    while buffers:
        for tp, buffer in list(buffers.items()):
            if not buffer and consumer.position(tp) >= ends[tp]:
                del buffers[tp]  # read to its end
        if not buffers:
            return
        if not all(buffers.values()):  # one fetch covers every partition: soon fed
            for tp, messages in consumer.poll(timeout_ms=1000, max_records=size).items():
                if tp in buffers:
                    buffers[tp].extend(
                        Record.from_kafka(m) for m in messages if m.offset < ends[tp]
                    )
            continue
        batch: list[Record] = []
        while len(batch) < size and buffers and all(buffers.values()):
            tp = min(buffers, key=lambda tp: buffers[tp][0].kafka_order)
            batch.append(buffers[tp].popleft())
        yield batch
