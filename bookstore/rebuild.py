"""Rebuild a store from the log: read its topics from the first offset, store as the workers do.

The records go through the workers' own code (bookstore.persister: the same validation, the same
idempotent writes, batches of at most BRIDGE_BATCH_SIZE records), so a rebuilt store is what
the pipeline wrote. Records the pipeline dead-lettered (the dead-letter topic names them) are
skipped: a store refusal depends on the store's state when the record came (an e-mail already
taken, a key of the wrong type), and the pipeline's decision is the log's. Re-publishing a dead
letter (`dead-letters replay`) puts it in the log again, so a rebuild then includes it. Records
the rebuild refuses itself are counted, not published again.

Each store is rebuilt by a consumer group of its own (`bookstore-rebuild.<namespace>.<store>`)
that commits after every stored batch: a rebuild cut off by Ctrl-C or a crash resumes where it
stopped, and running it again later catches up with what the topics received meanwhile.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bookstore import dead_letter_topic
from bookstore.config import Settings
from bookstore.entities import AUDIT_QUEUE as AUDIT
from bookstore.entities import EntityTable, topics
from bookstore.persister import Outcome, Persister
from bookstore.records import Record, audit_line
from bookstore.stores.audit import AuditLog


def stores(table: EntityTable) -> tuple[str, ...]:
    """Every store `rebuild` refills: each entity's (by its queue's name) and the audit log."""
    return (*table.store_queues, AUDIT)


def entities_of(table: EntityTable, store: str) -> tuple[str, ...]:
    """The entities a store is rebuilt from: an entity's store its own, the audit log all."""
    return table.names if store == AUDIT else (table.of_store(store).name,)


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


def group_id(settings: Settings, namespace: str, store: str) -> str:
    """The rebuild's consumer group; the topic prefix keeps deployments sharing a Kafka apart."""
    return f"{settings.kafka_topic_prefix}bookstore-rebuild.{namespace}.{store}"


def rebuild(
    settings: Settings,
    store: str,
    namespace: str,
    from_start: bool = False,
    refused: set[tuple[str, int, int]] | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_batch: Callable[[int], None] = lambda records: None,
) -> Summary:
    """Bring `store` (as `settings` locate it) up to the end its topics have now.

    A first run, or `from_start`, empties the store and reads from the first offset; otherwise
    the run resumes from the group's committed offsets. `refused`: the origins of the pipeline's
    dead letters (read from their topic when not given: a run over several stores reads them
    once). `on_start(total)` gets the number of records to read, `on_batch(n)` each batch's.
    Raises what a server that is away raises: the rebuild can be run again once it is back.
    """
    from kafka import KafkaConsumer, TopicPartition

    from bookstore.kafka import client_options
    from bookstore.offsets import OffsetTracker, for_commit

    summary = Summary(store)
    started = time.monotonic()
    consumer = KafkaConsumer(
        **client_options(settings),
        group_id=group_id(settings, namespace, store),
        client_id="bookstore-rebuild",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    persister = Persister(settings)
    tracker = OffsetTracker()
    try:
        partitions = [
            TopicPartition(t, p)
            for t in map(topics(settings).of, entities_of(settings.entities, store))
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
        summary.resumed = not from_start and any(o is not None for o in committed.values())
        if summary.resumed:
            for tp, offset in committed.items():
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        else:
            _clear(settings, store, persister)
            consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        on_start(sum(end - consumer.position(tp) for tp, end in ends.items()))
        audit = AuditLog(settings.audit_log_path)
        entity = entities_of(settings.entities, store)[0]  # whose records an entity store holds
        if store == AUDIT:
            refused = set()
        elif refused is None:
            refused = dead_letter_topic.origins(settings)
        for batch in _in_kafka_order(consumer, ends, settings.bridge_batch_size):
            if store == AUDIT:
                audit.append("".join(map(audit_line, batch)))
                summary.stored += len(batch)
            else:
                judged = [r for r in batch if (r.topic, r.partition, r.offset) not in refused]
                summary.dead_letters += len(batch) - len(judged)
                outcome = persister.store(entity, judged) if judged else Outcome()
                summary.stored += outcome.stored
                summary.dead_letters += len(outcome.dead)
                for dl in outcome.dead[: max(0, 5 - len(summary.examples))]:
                    summary.examples.append(f"{dl.record.coordinates} ({dl.stage}): {dl.reason}")
            tracker.confirm(batch)
            done = tracker.to_commit()
            consumer.commit(for_commit(done))
            tracker.committed_now(done)
            summary.read += len(batch)
            on_batch(len(batch))
    finally:
        persister.close()
        consumer.close()
    summary.seconds = time.monotonic() - started
    return summary


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


def _clear(settings: Settings, store: str, persister: Persister) -> None:
    """Empty the store a first run fills. A live audit log is kept aside, never deleted: it may
    hold records the topics no longer do (compacted away, or past their retention)."""
    if store == AUDIT:
        path = Path(settings.audit_log_path)
        if path.exists() and path.stat().st_size:
            path.rename(path.with_name(f"{path.name}.before-rebuild-{int(time.time())}"))
        return
    persister.store_for(settings.entities.of_store(store).name).clear()
