"""Kafka plumbing shared by every process: topic creation and a confirmed-send producer."""

from __future__ import annotations

import logging
import os
import socket
import threading

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from bookstore.config import Settings
from bookstore.topics import ALL_TOPICS

log = logging.getLogger(__name__)


class KafkaUnavailable(RuntimeError):
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


def ensure_topics(settings: Settings, topics: tuple[str, ...] = ALL_TOPICS) -> None:
    """Create the topics explicitly (never rely on broker auto-create); existing ones are kept."""
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
    finally:
        admin.close()


_producer: KafkaProducer | None = None
_producer_pid: int | None = None
_producer_lock = threading.Lock()


def producer(settings: Settings) -> KafkaProducer:
    """This process's producer: idempotent, acks=all, created lazily after any fork.

    A KafkaProducer shared across a fork hangs (its I/O thread does not survive), so the
    producer is keyed on the PID and Celery prefork children each build their own.
    """
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
    """Send (key, value, headers) messages and return only once Kafka acknowledged all of them."""
    kafka = producer(settings)
    futures = [kafka.send(topic, key=k, value=v, headers=h) for k, v, h in messages]
    kafka.flush(timeout=timeout)
    for future in futures:
        try:
            future.get(timeout=timeout)
        except KafkaError as exc:
            raise KafkaUnavailable(f"Kafka did not confirm a send to {topic}: {exc}") from exc
