"""Kafka plumbing shared by every process: topic creation and a confirmed-send producer."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from bookstore.config import Settings
from bookstore.errors import Unavailable
from bookstore.topics import ALL_TOPICS, DEAD_LETTERS, ENTITY_TOPICS

if TYPE_CHECKING:  # kafka-python is imported where it is used: the CLI's --help needs none of it
    from kafka import KafkaAdminClient, KafkaProducer

log = logging.getLogger(__name__)


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


# Room for a dead letter's headers (origin, stage, a reason of at most 1,000 characters) on top
# of the largest record its origin topic accepts.
DEAD_LETTER_HEADROOM = 64 * 1024
MAX_MESSAGE_BYTES = "max.message.bytes"


def ensure_topics(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> None:
    """Create the topics explicitly (never rely on broker auto-create); existing ones are kept.

    The `dead-letters` topic must accept any record its origin topics accepted (a dead letter
    keeps the original bytes): its `max.message.bytes` is raised to the origin topics' largest
    plus headroom, at creation and whenever an origin topic allows more than it does.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

    check_reachable(settings)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id="bookstore-admin"
        )
    except KafkaTimeoutError:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
        ) from None
    try:
        missing = set(topics) - set(admin.list_topics())
        if missing:
            new = [
                NewTopic(name, num_partitions=settings.kafka_partitions, replication_factor=1)
                for name in sorted(missing)
            ]
            try:
                admin.create_topics(new)
                log.info("created Kafka topics %s", ", ".join(sorted(missing)))
            except TopicAlreadyExistsError:
                pass  # another process created them first
        if DEAD_LETTERS in topics:
            _fit_dead_letters(admin)
    finally:
        admin.close()


def _fit_dead_letters(admin: KafkaAdminClient) -> None:
    from kafka.admin import ConfigResource

    limits = {
        topic: int(configs[MAX_MESSAGE_BYTES]["value"])
        for topic, configs in admin.describe_configs(
            [ConfigResource("TOPIC", t, configs={MAX_MESSAGE_BYTES: None}) for t in ALL_TOPICS],
            config_filter="all",
        )["topic"].items()
    }
    needed = max(limits[t] for t in ENTITY_TOPICS) + DEAD_LETTER_HEADROOM
    if limits[DEAD_LETTERS] < needed:
        admin.alter_configs(
            [ConfigResource("TOPIC", DEAD_LETTERS, configs={MAX_MESSAGE_BYTES: str(needed)})]
        )
        log.info("%s now accepts records up to %d bytes", DEAD_LETTERS, needed)


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
