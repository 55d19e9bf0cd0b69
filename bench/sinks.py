"""The peers the pipeline is measured against, each run as a process by bench/pipeline.py:

    python bench/sinks.py naive         one consumer for every entity topic, and per record one
                                        store write, one audit append and one offset commit
    python bench/sinks.py direct STORE  the ceiling: one process per store of the entity table
                                        (postgres, mongo, redis, audit, ...), each consuming its
                                        own topic(s) and writing batches with the workers' own
                                        code, no Celery in between

Configured by the environment, as the product (BRIDGE_GROUP_ID is the consumer group, suffixed
by the role), plus EXPECT (how many records to store) and GO_FILE (starts once it exists). Prints
JSON lines, times in epoch seconds: {"event": "ready"} once the consumer holds its partitions,
then {"event": "done", "records": n}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from bookstore.config import load_settings
from bookstore.entities import AUDIT_QUEUE, topics
from bookstore.kafka import client_options
from bookstore.persister import Persister
from bookstore.records import Record


def report(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def consumer(topics: tuple[str, ...], group: str, batch: int) -> KafkaConsumer:
    """Holds every partition of `topics` at once (assign, no group join: nothing to wait for),
    from `group`'s committed offsets; reports ready, then waits for the driver's go (GO_FILE)."""
    settings = load_settings()
    c = KafkaConsumer(
        **client_options(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
    )
    c.assign([TopicPartition(t, p) for t in topics for p in c.partitions_for_topic(t)])
    for tp in c.assignment():
        c.position(tp)  # resolve the committed offset now, not on the clock
    report("ready")
    go = Path(os.environ["GO_FILE"])
    while not go.exists():
        time.sleep(0.01)
    return c


def naive(expect: int) -> None:
    settings = load_settings()
    persister = Persister(settings)
    names = topics(settings)
    kafka = consumer(names.entities, f"{settings.bridge_group_id}-naive", 1)
    done = 0
    while done < expect:
        for tp, messages in kafka.poll(timeout_ms=500, max_records=1).items():
            for message in messages:
                record = Record.from_kafka(message)
                persister.persist(names.entity(tp.topic).queue, [record])
                persister.persist(AUDIT_QUEUE, [record])
                kafka.commit({tp: OffsetAndMetadata(message.offset + 1, "", -1)})
                done += 1
    finish(kafka, done)


def finish(kafka: KafkaConsumer, done: int) -> None:
    """Report, then stay connected until the driver stops this process: its server sessions
    (a PostgreSQL backend, say) must still exist when the driver reads their CPU time."""
    report("done", records=done)
    while True:
        time.sleep(1)


def direct(store: str, expect: int) -> None:
    settings = load_settings()
    names = topics(settings)
    read = tuple(names.of(e) for e in settings.entities.store(store).entities)
    kafka = consumer(read, f"{settings.bridge_group_id}-{store}", settings.bridge_batch_size)
    persister = Persister(settings)
    done = 0
    while done < expect:
        polled = kafka.poll(timeout_ms=500, max_records=settings.bridge_batch_size)
        records = [Record.from_kafka(m) for messages in polled.values() for m in messages]
        if records:  # one write per poll, across the partitions, as the bridge batches
            persister.persist(store, records)
            done += len(records)
            kafka.commit()
    finish(kafka, done)


if __name__ == "__main__":
    expected = int(os.environ["EXPECT"])
    if sys.argv[1:2] == ["naive"]:
        naive(expected)
    else:
        direct(sys.argv[2], expected)
