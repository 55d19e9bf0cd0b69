"""Kafka plumbing shared by every process: clients, offsets, reading the log, a confirmed-send
producer. (What the topics must be: bookstore.topic_config.)"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from bookstore.config import Settings
from bookstore.errors import Unavailable

if TYPE_CHECKING:  # kafka-python is imported where it is used: the CLI's --help needs none of it
    from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class KafkaUnavailable(Unavailable):
    """Kafka could not be reached; the message names the address."""


def check_reachable(settings: Settings, timeout: float = 3.0) -> None:
    """Fail fast, naming the address, when no bootstrap server accepts a connection.

    (kafka-python itself only gives up after its 30 s bootstrap timeout.)
    """
    for address in settings.kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout).close()
            return
        except (OSError, ValueError):
            continue
    raise KafkaUnavailable(
        f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
    )


def admin_client(settings: Settings) -> KafkaAdminClient:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaTimeoutError

    check_reachable(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id="bookstore-admin"
        )
    except KafkaTimeoutError:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
        ) from None


def offsets(
    settings: Settings, topics: Iterable[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Each partition's first offset and end offset (the next record's), now."""
    from kafka import KafkaConsumer, TopicPartition

    check_reachable(settings)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        return consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    finally:
        consumer.close()


def group_offsets(settings: Settings, group: str) -> dict[TopicPartition, int]:
    """The offsets a consumer group has committed (none: {})."""
    admin = admin_client(settings)
    try:
        committed = _retrying(lambda: admin.list_group_offsets(group).get(group, {}))
    finally:
        admin.close()
    return {tp: om.offset for tp, om in committed.items()}


def commit_group_offsets(settings: Settings, group: str, at: dict[TopicPartition, int]) -> None:
    """Set a consumer group's committed offsets (a group with no running member).

    Returns only once Kafka accepted every partition's offset: a partition it refuses raises
    its error, naming the group and the partition (a transient one is retried first, as a new
    broker's missing coordinator is). kafka-python returns these errors instead of raising."""
    from kafka.errors import NoError
    from kafka.structs import OffsetAndMetadata

    admin = admin_client(settings)
    offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in at.items()}

    def commit() -> None:
        results = admin.alter_group_offsets(group, offsets)
        refused = sorted((tp, error) for tp, error in results.items() if error is not NoError)
        if refused:
            (tp, error), others = refused[0], len(refused) - 1
            raise error(
                f"group {group}: Kafka refused the offset of {tp.topic}[{tp.partition}]"
                + (f" and of {others} more partition(s)" if others else "")
            )

    try:
        _retrying(commit)
    finally:
        admin.close()


def _retrying(call: Callable[[], T], seconds: float = 30.0) -> T:
    """`call()`, again while Kafka answers with a retriable error: a broker just started has no
    group coordinator until it created its offsets topic (kafka-python's admin client does not
    retry that, its consumer does)."""
    from kafka.errors import KafkaError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def count_keyless(settings: Settings, topic: str) -> int:
    """How many records of `topic` have no key: one pass over it, from its first offset."""
    keyless = 0
    for batch in read_topics(settings, [topic]):
        keyless += sum(1 for r in batch if r.key is None)
    return keyless


def read_topics(
    settings: Settings,
    topics: Iterable[str],
    max_records: int = 2000,
    on_bounds: Callable[[dict, dict], None] = lambda starts, ends: None,
) -> Iterator[list[ConsumerRecord]]:
    """Every record the topics hold now, in batches, from the first offset of each partition to
    its end when the call starts (records written meanwhile are not read). No consumer group.
    `on_bounds(starts, ends)` gets each partition's first and end offsets ({TopicPartition:
    offset}) before the first batch."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        partitions = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        on_bounds(consumer.beginning_offsets(partitions), ends)
        remaining = {tp: end for tp, end in ends.items() if consumer.position(tp) < end}
        while remaining:
            polled = consumer.poll(timeout_ms=1000, max_records=max_records)
            for tp, records in polled.items():
                batch = [r for r in records if r.offset < remaining.get(tp, -1)]
                if batch:
                    yield batch
            for tp in [tp for tp, end in remaining.items() if consumer.position(tp) >= end]:
                del remaining[tp]
                consumer.pause(tp)
    finally:
        consumer.close()


def offsets_held(
    settings: Settings, spans: dict[TopicPartition, list[tuple[int, int]]], timeout: float = 60.0
) -> dict[TopicPartition, set[int]]:
    """The offsets within each partition's [start, stop) spans that hold a record. Offsets are
    not contiguous: compaction, retention and transaction markers leave some without one."""
    from collections import deque

    from kafka import KafkaConsumer

    held: dict[TopicPartition, set[int]] = {tp: set() for tp in spans}
    todo = {tp: deque(sorted(s)) for tp, s in spans.items() if s}
    if not todo:
        return held
    check_reachable(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",  # a span before the log's start: read from its start
    )
    deadline = time.monotonic() + timeout
    try:
        consumer.assign(list(todo))
        for tp, end in consumer.end_offsets(list(todo)).items():  # nothing to wait for beyond
            todo[tp] = deque((a, min(b, end)) for a, b in todo[tp] if a < end)
        for tp, left in list(todo.items()):
            if left:
                consumer.seek(tp, left[0][0])
            else:
                del todo[tp]
        while todo:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"timed out reading {', '.join(map(str, todo))}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                left = todo.get(tp, deque())
                for r in records:
                    while left and r.offset >= left[0][1]:
                        left.popleft()
                    if left and r.offset >= left[0][0]:
                        held[tp].add(r.offset)
            for tp, left in list(todo.items()):
                position = consumer.position(tp)
                while left and position >= left[0][1]:
                    left.popleft()
                if not left:
                    del todo[tp]
                    consumer.pause(tp)
                elif position < left[0][0]:
                    consumer.seek(tp, left[0][0])
    finally:
        consumer.close()
    return held


_producer: KafkaProducer | None = None
_producer_pid: int | None = None
_producer_lock = threading.Lock()


def producer(settings: Settings) -> KafkaProducer:
    """This process's producer: idempotent, acks=all, created lazily after any fork.

    A KafkaProducer shared across a fork hangs (its I/O thread does not survive), so the
    producer is keyed on the PID and Celery prefork children each build their own.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    global _producer, _producer_pid
    with _producer_lock:
        if _producer is None or _producer_pid != os.getpid():
            try:
                _producer = KafkaProducer(
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    retries=2**31 - 1,
                    delivery_timeout_ms=120_000,
                    # A dead letter is as large as the record it keeps (up to its origin topic's
                    # limit, 1 MiB by default); the topic, not the client, sets the bound.
                    max_request_size=32 * 1024 * 1024,
                    reconnect_backoff_max_ms=1000,  # not 30 s: resume soon after a restart
                )
            except KafkaTimeoutError:
                raise KafkaUnavailable(
                    f"cannot reach Kafka at {settings.kafka_bootstrap_servers}"
                ) from None
            _producer_pid = os.getpid()
        return _producer


def send_confirmed(
    settings: Settings,
    topic: str,
    messages: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    timeout: float = 60.0,
) -> None:
    """Send (key, value, headers) messages and return only once Kafka acknowledged all of them.

    A failure is raised as kafka-python's own error: its `retriable` flag tells the error policy
    (bookstore.errors) whether Kafka was away or the message itself was refused.
    """
    kafka = producer(settings)
    futures = [kafka.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
    kafka.flush(timeout=timeout)
    for future in futures:
        future.get(timeout=timeout)
