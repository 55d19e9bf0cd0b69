"""Which bootstrap servers a client is given: only those that answer Kafka's protocol. A port
that accepts connections but is something else (another server on a mistyped port) or that
stays silent (a paused broker) is left out; none answering is one error naming the setting."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from bookstore.config import Settings
from bookstore.kafka import KafkaUnavailable, bootstrap_servers


def serve(reply: bytes | None) -> Iterator[str]:
    """A listener on 127.0.0.1 that reads the probe and sends `reply` (None: says nothing)."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            if reply is not None:
                conn.sendall(reply[:5])  # in two segments: the probe must wait for all of it
                time.sleep(0.1)
                conn.sendall(reply[5:])
            done.wait(5)

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        server.close()


@pytest.fixture
def kafka() -> Iterator[str]:
    yield from serve(struct.pack(">ii", 20, 7) + b"\0" * 20)  # size, the probe's correlation id


@pytest.fixture
def other_server() -> Iterator[str]:
    yield from serve(b"-ERR unknown command\r\n")


@pytest.fixture
def silent() -> Iterator[str]:
    yield from serve(None)


def test_only_brokers_that_answer_kafka_are_bootstrapped_from(kafka, other_server, silent):
    settings = Settings(kafka_bootstrap_servers=f"{other_server},{silent},{kafka}")
    assert bootstrap_servers(settings, timeout=2.0) == kafka


def test_no_broker_answering_is_one_error_naming_the_setting(other_server):
    settings = Settings(kafka_bootstrap_servers=f"{other_server},127.0.0.1:1")
    with pytest.raises(KafkaUnavailable, match="KAFKA_BOOTSTRAP_SERVERS"):
        bootstrap_servers(settings, timeout=2.0)


@pytest.mark.timeout(60)  # unbounded, the handshake would hold the client for good
def test_a_tls_handshake_nobody_answers_is_given_up_and_tried_again(tmp_path):
    """A broker whose kernel accepts connections but that answers nothing (paused): the client
    gives its TLS handshake up after TLS_HANDSHAKE_SECONDS and connects again (kafka-python
    alone waits for it for good, and its metadata with it)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaTimeoutError

    from bookstore import pki
    from bookstore.kafka import TLS_HANDSHAKE_SECONDS, security_options

    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])  # and never a byte back
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    ca = pki.ensure_ca(tmp_path)
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca.cert))
    try:
        with pytest.raises(KafkaTimeoutError):
            KafkaAdminClient(
                bootstrap_servers=f"127.0.0.1:{server.getsockname()[1]}",
                bootstrap_timeout_ms=int((TLS_HANDSHAKE_SECONDS * 2 + 1) * 1000),
                reconnect_backoff_max_ms=500,
                **security_options(settings),
            )
        assert len(accepted) >= 2, "the first handshake was waited for to the end"
    finally:
        server.close()
        for conn in accepted:
            conn.close()
