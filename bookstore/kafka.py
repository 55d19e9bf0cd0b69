"""Kafka plumbing shared by every process: clients, offsets, reading the log, a confirmed-send
producer. (What the topics must be: bookstore.topic_config.)"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from bookstore.config import Settings
from bookstore.errors import Unavailable

if TYPE_CHECKING:  # kafka-python is imported where it is used: the CLI's --help needs none of it
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

log = logging.getLogger(__name__)
T = TypeVar("T")


class KafkaUnavailable(Unavailable):
    """Kafka could not be reached; the message names the address."""


# An ApiVersions v0 request (size, api key 18, version 0, correlation id 7, no client id): a
# broker that answers it is alive, not merely accepting connections.
_CORRELATION_ID = 7
_API_VERSIONS = struct.pack(">ihhih", 10, 18, 0, _CORRELATION_ID, -1)


def bootstrap_servers(settings: Settings, timeout: float = 1.0) -> str:
    """Of KAFKA_BOOTSTRAP_SERVERS, the brokers that answer Kafka's protocol now, as a client's
    `bootstrap_servers`. kafka-python bootstraps from one of them picked at random and gives it
    the whole bootstrap timeout: a paused or cut-off broker (its port still accepting, or not
    answering at all) would fail every client built meanwhile. None answering is a
    `KafkaUnavailable` naming the addresses (kafka-python itself only gives up after 30 s)."""
    tls, tls_errors = _tls_context(settings), []
    addresses = settings.kafka_bootstrap_servers.split(",")
    live = [a.strip() for a in addresses if _answers(a, timeout, tls, tls_errors)]
    if not live:
        why = f": TLS: {'; '.join(tls_errors)} (KAFKA_SSL_CAFILE)" if tls_errors else ""
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
            + why
        )
    return ",".join(live)


def client_options(settings: Settings) -> dict[str, Any]:
    """What every Kafka client of the product is built with, so that the loss of a broker
    (killed, paused, cut off) costs seconds, not minutes:
    - bootstrapped from a broker that answers (`bootstrap_servers`);
    - a request unanswered for 10 s is given up and asked of another broker (kafka-python's
      30 s is how long a paused broker stalled the pipeline, though the cluster had fenced it
      and moved its partitions after 6 s); retrying is safe, the producers are idempotent;
    - a connection not set up within 2 s is given up (10 s, retried on the same silent broker
      for every metadata refresh, was how long a cut-off broker held the bridge);
    - reconnecting at most 1 s apart (30 s: a restarted broker would stay unused that long)."""
    from kafka.net.compat import KafkaNetClient

    return {
        **security_options(settings),
        "bootstrap_servers": bootstrap_servers(settings),
        "request_timeout_ms": 10_000,
        "reconnect_backoff_max_ms": 1_000,
        # the clients' own configuration does not take the connection set-up timeouts: they are
        # the network client's (a documented hook: `kafka_client`, what builds it)
        "kafka_client": functools.partial(
            KafkaNetClient,
            socket_connection_setup_timeout_ms=2_000,
            socket_connection_setup_timeout_max_ms=10_000,
        ),
    }


def security_options(settings: Settings) -> dict[str, Any]:
    """kafka-python's TLS and SASL options from the settings (none for PLAINTEXT). The brokers'
    names are always checked against their certificates (kafka-python's default)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    _bound_tls_handshakes()
    options: dict[str, Any] = {
        "security_protocol": protocol,
        "ssl_cafile": settings.kafka_ssl_cafile or None,
        "ssl_certfile": settings.kafka_ssl_certfile or None,
        "ssl_keyfile": settings.kafka_ssl_keyfile or None,
    }
    if protocol == "SASL_SSL":
        options |= {
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    return options


# How long a TLS handshake with a broker may take (milliseconds on loopback, a few round trips
# on a network) before the connection is given up and tried again.
TLS_HANDSHAKE_SECONDS = 5.0


def _bound_tls_handshakes() -> None:
    """kafka-python (3.0) waits for a broker's TLS handshake without a deadline: its connection
    set-up timeout bounds the TCP connect and the first requests, not the handshake between
    them. A broker whose kernel still accepts connections but that answers nothing (paused,
    hung) then held a client's connection to it, and every metadata refresh queued behind it,
    for good: the cluster had moved the partitions within seconds, a producer kept sending to
    the paused broker for five minutes (tests/cluster, a Kafka node paused). Each handshake is
    given TLS_HANDSHAKE_SECONDS, then fails as a connection error (retried, with back-off)."""
    from kafka.net.transport import KafkaSSLTransport

    if getattr(KafkaSSLTransport.handshake, "bounded", False):
        return

    async def handshake(self: Any) -> None:
        deadline = time.monotonic() + TLS_HANDSHAKE_SECONDS
        while True:
            try:
                self._sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                await self._net.wait_read(self._sock, timeout_at=deadline)
            except ssl.SSLWantWriteError:
                await self._net.wait_write(self._sock, timeout_at=deadline)

    handshake.bounded = True  # type: ignore[attr-defined]
    KafkaSSLTransport.handshake = handshake  # type: ignore[method-assign]


def _tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The probe's TLS, as the clients': the CA of KAFKA_SSL_CAFILE, the host name checked."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return context


def check_reachable(settings: Settings) -> None:
    """Fail fast, naming the address, when no broker answers."""
    bootstrap_servers(settings)


def _answers(
    address: str, timeout: float, tls: ssl.SSLContext | None, tls_errors: list[str]
) -> bool:
    """A broker at `address` answers ApiVersions (allowed before authentication), over TLS when
    the clients use it; a TLS failure (an unknown CA, a name the certificate does not carry) is
    added to `tls_errors`: it is a configuration error, not an absent broker."""
    host, _, port = address.strip().rpartition(":")
    host = host.strip("[]") or "localhost"
    try:
        s = socket.create_connection((host, int(port)), timeout)
    except (OSError, ValueError):
        return False
    try:
        if tls:
            s = tls.wrap_socket(s, server_hostname=host)
        s.settimeout(timeout)
        s.sendall(_API_VERSIONS)
        # the response's size and correlation id, however TCP splits them (a buffered read
        # loops; MSG_WAITALL does not on a socket with a timeout)
        with s.makefile("rb") as reply:
            head = reply.read(8)
        return len(head) == 8 and struct.unpack(">ii", head)[1] == _CORRELATION_ID
    except ssl.SSLCertVerificationError as exc:
        tls_errors.append(f"{address.strip()}: certificate verify failed: {exc.verify_message}")
        return False
    except ssl.SSLError as exc:
        tls_errors.append(f"{address.strip()}: {exc.reason or exc}")
        return False
    except OSError:
        return False
    finally:
        s.close()


class _LoginRefusals(logging.Handler):
    """The SASL refusals kafka-python logs while it bootstraps (it retries a refused login
    until its bootstrap times out, and raises only the timeout)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: Exception | None = None

    def emit(self, record: logging.LogRecord) -> None:
        from kafka.errors import SaslAuthenticationFailedError

        args = record.args if isinstance(record.args, tuple) else ()
        refused = [a for a in args if isinstance(a, SaslAuthenticationFailedError)]
        self.seen = refused[0] if refused else self.seen


@contextlib.contextmanager
def bootstrapping(settings: Settings) -> Iterator[None]:
    """Around building a Kafka client: its bootstrap timing out is a `KafkaUnavailable` that
    names the address, or the refused login when the broker refused it (a wrong password would
    otherwise read as an unreachable Kafka, 30 s later)."""
    from kafka.errors import KafkaTimeoutError

    refusals = _LoginRefusals()
    logger = logging.getLogger("kafka.net")
    logger.addHandler(refusals)
    try:
        yield
    except KafkaTimeoutError:
        if refusals.seen is not None:
            raise KafkaUnavailable(
                f"Kafka at {settings.kafka_bootstrap_servers} refused the login of"
                f" KAFKA_SASL_USERNAME={settings.kafka_sasl_username!r}: wrong"
                " KAFKA_SASL_PASSWORD, or no such user"
            ) from None
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
        ) from None
    finally:
        logger.removeHandler(refusals)


def new_consumer(settings: Settings, **options: Any) -> KafkaConsumer:
    """A KafkaConsumer built as every client of the product is (`client_options`)."""
    from kafka import KafkaConsumer

    with bootstrapping(settings):
        return KafkaConsumer(**client_options(settings), **options)


def admin_client(settings: Settings) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    with bootstrapping(settings):
        return KafkaAdminClient(**client_options(settings), client_id="bookstore-admin")


def alter_configs(admin: KafkaAdminClient, resources: list) -> dict[str, str]:
    """Alter topics' or brokers' configs, validated by the brokers alone; returns each resource
    the brokers refused (or did not answer for) with why. kafka-python's own check first
    describes a resource's dynamic configs, and a broker that has not yet caught up with a topic
    just created describes none: it refused `max.message.bytes` as "unrecognized" (seen while a
    cluster started)."""
    result = admin.alter_configs(resources, raise_on_unknown=False)
    outcomes = {name: outcome for by_name in result.values() for name, outcome in by_name.items()}
    return {
        r.name: str(outcomes.get(r.name, "no answer"))
        for r in resources
        if outcomes.get(r.name) != "OK"
    }


def offsets(
    settings: Settings, topics: Iterable[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Each partition's first offset and end offset (the next record's), now."""
    from kafka import TopicPartition

    consumer = new_consumer(settings, group_id=None)
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        return consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    finally:
        consumer.close()


def spanned(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """How many offsets each partition spans now (end minus first; compaction may have left
    fewer records than that)."""
    starts, ends = offsets(settings, topics)
    return {tp: ends[tp] - starts[tp] for tp in ends}


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


Window = Callable[["TopicPartition", int, int], tuple[int, int]]
STALLED_SECONDS = 60  # a read that got nothing for this long: Kafka is away


def read_topics(
    settings: Settings,
    topics: Iterable[str],
    max_records: int = 2000,
    on_bounds: Callable[[dict, dict], None] = lambda starts, ends: None,
    window: Window = lambda tp, start, end: (start, end),
) -> Iterator[list[ConsumerRecord]]:
    """Every record the topics hold now, in batches, from the first offset of each partition to
    its end when the call starts (records written meanwhile are not read). No consumer group.
    `on_bounds(starts, ends)` gets each partition's first and end offsets ({TopicPartition:
    offset}) before the first batch; `window(tp, first, end)` narrows a partition to the
    [start, stop) it gives (e.g. its last 50 records)."""
    from kafka import TopicPartition

    consumer = new_consumer(
        settings,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",  # a start retention removed meanwhile: the new first one
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
        starts, ends = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        on_bounds(starts, ends)
        remaining = {}
        for tp in partitions:
            start, stop = window(tp, starts[tp], ends[tp])
            start, stop = max(start, starts[tp]), min(stop, ends[tp])
            if start < stop:
                consumer.seek(tp, start)
                remaining[tp] = stop
            else:
                consumer.pause(tp)
        progressed = time.monotonic()
        while remaining:
            if time.monotonic() - progressed > STALLED_SECONDS:
                raise KafkaUnavailable(f"no progress reading {', '.join(map(str, remaining))}")
            polled = consumer.poll(timeout_ms=1000, max_records=max_records)
            if polled:
                progressed = time.monotonic()
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

    held: dict[TopicPartition, set[int]] = {tp: set() for tp in spans}
    todo = {tp: deque(sorted(s)) for tp, s in spans.items() if s}
    if not todo:
        return held
    consumer = new_consumer(
        settings,
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

    global _producer, _producer_pid
    with _producer_lock:
        if _producer is None or _producer_pid != os.getpid():
            with bootstrapping(settings):
                _producer = KafkaProducer(
                    **client_options(settings),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    retries=2**31 - 1,
                    delivery_timeout_ms=120_000,
                    # A dead letter is as large as the record it keeps (up to its origin topic's
                    # limit, 1 MiB by default); the topic, not the client, sets the bound.
                    max_request_size=32 * 1024 * 1024,
                )
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
