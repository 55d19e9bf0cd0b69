"""The development CA and its certificates (bookstore.pki, `python -m bookstore certs`): what a
TLS client of each server checks is in them, and the keys are private from their first byte."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509

from bookstore.pki import ensure_ca, issue, served_certificate
from tests.support import run


def test_a_server_certificate_names_each_address_as_ip_and_as_dns(tmp_path):
    ensure_ca(tmp_path)
    issued = issue(tmp_path, "rabbitmq-2", ["127.0.2.2", "rabbitmq-2", "localhost"], days=30)
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.2.2")]
    assert names.get_values_for_type(x509.DNSName) == ["127.0.2.2", "rabbitmq-2", "localhost"]
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "rabbitmq-2"
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < left <= datetime.timedelta(days=30)


def test_keys_are_pkcs8_and_private_and_the_chain_verifies(tmp_path):
    ca = ensure_ca(tmp_path)
    issued = issue(tmp_path, "kafka-1", ["127.0.1.1"])
    for key in (ca.key, issued.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        label = key.read_text().split("\n", 1)[0].removeprefix("-----BEGIN ").rstrip("-")
        assert label == "PRIVATE KEY"  # PKCS#8, which Kafka needs (not "EC PRIVATE KEY")
    assert issued.cert.read_text().count("BEGIN CERTIFICATE") == 2  # the leaf, then the CA
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(issued.cert, issued.key)  # the key matches its certificate
    leaf = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    leaf.verify_directly_issued_by(root)


def test_a_ca_already_there_is_kept(tmp_path):
    first = ensure_ca(tmp_path).cert.read_bytes()
    assert ensure_ca(tmp_path).cert.read_bytes() == first


def test_the_cli_makes_them_and_refuses_without_a_ca(tmp_path):
    missing = run("-m", "bookstore", "certs", "issue", "redis", "--dir", str(tmp_path))
    assert missing.returncode == 2 and "certs ca --dir" in missing.stderr, missing.stderr
    assert run("-m", "bookstore", "certs", "ca", "--dir", str(tmp_path)).returncode == 0
    made = run("-m", "bookstore", "certs", "issue", "redis", "--dir", str(tmp_path), "--host=::1")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "redis.pem").exists() and (tmp_path / "redis.key").exists()


@contextlib.contextmanager
def _serving(server_cert, server_key) -> Iterator[int]:
    """A TLS server on a loopback port presenting server_cert, for one connection: its port."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(server_cert, server_key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        accepted = threading.Thread(target=lambda: _serve_once(listener, server), daemon=True)
        accepted.start()
        yield listener.getsockname()[1]
        accepted.join(5)


def _handshake(server_cert, server_key, trusted, host: str) -> None:
    """A TLS handshake on loopback: a server presenting server_cert, a client trusting `trusted`
    and checking the server's name against `host` (as every client of the product does)."""
    client = ssl.create_default_context(cafile=trusted)
    with (
        _serving(server_cert, server_key) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=host),
    ):
        pass


def _serve_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    conn, _ = listener.accept()
    try:
        with context.wrap_socket(conn, server_side=True):
            pass
    except (ssl.SSLError, OSError):
        pass  # the client refused us: what some tests expect


def test_clients_verify_the_name_and_the_ca(tmp_path):
    ca = ensure_ca(tmp_path / "ours")
    issued = issue(tmp_path / "ours", "redis", ["127.0.0.1", "redis"])
    _handshake(issued.cert, issued.key, ca.cert, "127.0.0.1")
    _handshake(issued.cert, issued.key, ca.cert, "redis")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch, certificate is not valid"):
        _handshake(issued.cert, issued.key, ca.cert, "127.0.0.2")  # a name it does not carry
    other = ensure_ca(tmp_path / "theirs")
    untrusted = "self-signed certificate in certificate chain"
    with pytest.raises(ssl.SSLCertVerificationError, match=untrusted):
        _handshake(issued.cert, issued.key, other.cert, "127.0.0.1")  # another CA's client


def test_served_certificate_is_the_one_the_server_presents(tmp_path):
    """What `scripts/services reload-tls` waits for: a new connection shown the new serial."""
    ca = ensure_ca(tmp_path / "ours")
    issued = issue(tmp_path / "ours", "kafka-1", ["127.0.0.1"])
    expected = x509.load_pem_x509_certificate(issued.cert.read_bytes()).serial_number
    with _serving(issued.cert, issued.key) as port:
        assert served_certificate("127.0.0.1", port, ca.cert).serial_number == expected
    other = ensure_ca(tmp_path / "theirs")
    with pytest.raises(ssl.SSLCertVerificationError), _serving(issued.cert, issued.key) as port:
        served_certificate("127.0.0.1", port, other.cert)
