"""Every server of the secure stack: no plaintext, nobody anonymous, no wrong password, no other
CA. Each refusal next to the same request with the right credentials succeeding."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
from pathlib import Path

import psycopg2
import pytest
import redis
from kombu import Connection
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bookstore.broker import broker_tls, connect, reach
from bookstore.config import Settings
from bookstore.kafka import KafkaUnavailable, admin_client, bootstrap_servers
from bookstore.pki import served_certificate
from bookstore.provision import password as secret
from tests.security.conftest import REPO, settings_of

HOST = "127.0.0.1"
API_VERSIONS = struct.pack(">ihhih", 10, 18, 0, 7, -1)


def plaintext_reply(port: int, hello: bytes) -> bytes:
    """What a server answers `hello` sent in the clear (b"": nothing, or closed)."""
    try:
        with socket.create_connection((HOST, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(hello)
            return s.recv(64)
    except OSError:
        return b""


def tls_handshake(port: int, ca: str) -> bool:
    return served_certificate(HOST, port, ca, timeout=3) is not None


# ---- no plaintext anywhere


@pytest.mark.parametrize(
    ("server", "port", "hello"),
    [
        ("kafka clients", 9092, API_VERSIONS),
        ("kafka controllers", 9093, API_VERSIONS),
        ("kafka brokers", 9094, API_VERSIONS),
        ("rabbitmq", 5671, b"AMQP\x00\x00\x09\x01"),
        ("redis", 6379, b"PING\r\n"),
        ("mongo", 27017, struct.pack("<iiii", 16, 1, 0, 2013)),
    ],
)
def test_a_tls_port_answers_nothing_in_plaintext(server, port, hello, ca):
    assert tls_handshake(port, ca), f"{server}: no TLS on {port}"
    reply = plaintext_reply(port, hello)
    # a TLS server may answer a plaintext hello with a TLS alert record (content type 21), never
    # with its protocol
    assert reply[:1] in (b"", b"\x15"), f"{server} answered plaintext on {port}: {reply!r}"


def test_every_port_of_the_stack_speaks_tls_with_our_ca(state, ca):
    """Every TCP port a server of the stack listens on completes a TLS handshake with a
    certificate of our CA (PostgreSQL's starts in plaintext and upgrades: its own test below;
    Erlang's port mapper, which maps node names to ports, is not a server of ours)."""
    import psutil

    servers = {int(p.read_text()) for p in (state / "run").glob("*.pid")}
    ports = {
        c.laddr.port
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in servers
    }
    assert {9092, 9093, 9094, 5671, 6379, 5432, 27017} <= ports
    assert 5672 not in ports  # RabbitMQ's plaintext AMQP
    pki = state / "pki"
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(pki / "operator.pem", pki / "operator.key")
    for port in sorted(ports - {5432}):
        with (
            socket.create_connection((HOST, port), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as s,
        ):
            assert s.version() in ("TLSv1.2", "TLSv1.3"), port


def test_postgres_refuses_a_connection_without_tls(state):
    password = secret(state, "operator", "postgres")
    dsn = f"host={HOST} port=5432 dbname=bookstore user=operator password={password}"
    with psycopg2.connect(dsn + " sslmode=require", connect_timeout=5) as ok:
        assert ok.info.ssl_in_use
    ok.close()
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(dsn + " sslmode=disable", connect_timeout=5)


# ---- Kafka: SCRAM over TLS, the brokers' certificate from our CA


def kafka_admin(ca: str, user: str, password: str):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=f"{HOST}:9092",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user,
        sasl_plain_password=password,
        ssl_cafile=ca,
        bootstrap_timeout_ms=5_000,
    )


def kafka_log_mentions(state: Path, text: str, since: int) -> bool:
    return text in (state / "logs" / "kafka.log").read_text()[since:]


def test_kafka_refuses_a_wrong_password_and_an_unknown_user(state, ca):
    from kafka.errors import KafkaTimeoutError

    kafka_admin(ca, "bridge", secret(state, "bridge", "kafka")).close()
    for user, password in [("bridge", "wrong"), ("nobody", "wrong"), ("bridge", "")]:
        since = (state / "logs" / "kafka.log").stat().st_size
        with pytest.raises(KafkaTimeoutError):
            kafka_admin(ca, user, password)
        assert kafka_log_mentions(state, "invalid credentials with SASL mechanism", since), user


def test_a_refused_kafka_login_is_named_not_taken_for_an_unreachable_kafka():
    """kafka-python retries a refused SASL login until its bootstrap times out (30 s) and
    raises only the timeout; the product says which it was."""
    wrong = settings_of("bridge").replace(kafka_sasl_password="wrong")
    with pytest.raises(KafkaUnavailable, match="refused the login of KAFKA_SASL_USERNAME='bridge'"):
        admin_client(wrong)


def test_kafka_clients_refuse_a_broker_of_another_ca(other_ca, state, ca):
    mine = settings_of("bridge")
    assert bootstrap_servers(mine) == f"{HOST}:9092"
    theirs = mine.replace(kafka_ssl_cafile=str(other_ca / "ca.pem"))
    with pytest.raises(KafkaUnavailable, match="certificate verify failed"):
        bootstrap_servers(theirs)


# ---- RabbitMQ: TLS only, no guest, passwords checked


def rabbit(url: str, ca: str) -> Connection:
    settings = Settings(celery_broker_url=url, celery_broker_cafile=ca)
    return Connection(url, ssl=broker_tls(settings), connect_timeout=5)


def test_rabbitmq_refuses_guest_wrong_passwords_and_another_ca(state, ca, other_ca):
    from amqp.exceptions import AccessRefused

    good = f"amqps://beat:{secret(state, 'beat', 'rabbitmq')}@{HOST}:5671//"
    with rabbit(good, ca) as conn:
        conn.connect()
    for url in [
        f"amqps://guest:guest@{HOST}:5671//",
        f"amqps://beat:wrong@{HOST}:5671//",
    ]:
        with rabbit(url, ca) as conn, pytest.raises(AccessRefused):
            conn.connect()
    with (
        rabbit(good, str(other_ca / "ca.pem")) as conn,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        conn.connect()


# ---- Redis: ACL users only


def test_redis_refuses_the_anonymous_a_wrong_password_and_another_ca(state, ca, other_ca):
    def client(user: str | None, password: str | None, cafile: str) -> redis.Redis:
        return redis.Redis(
            host=HOST,
            port=6379,
            ssl=True,
            ssl_ca_certs=cafile,
            username=user,
            password=password,
            socket_timeout=5,
        )

    password = secret(state, "worker-redis", "redis")
    assert client("worker-redis", password, ca).ping()
    with pytest.raises(redis.AuthenticationError):
        client(None, None, ca).get("order:x")
    with pytest.raises(redis.AuthenticationError):
        client("worker-redis", "wrong", ca).ping()
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client(
            "worker-redis", secret(state, "worker-redis", "redis"), str(other_ca / "ca.pem")
        ).ping()


# ---- PostgreSQL: SCRAM over verified TLS


def test_postgres_refuses_a_wrong_password_and_another_ca(state, ca, other_ca):
    password = secret(state, "worker-postgres", "postgres")

    def dsn(pw: str, root: str) -> str:
        return (
            f"host={HOST} port=5432 dbname=bookstore user=worker-postgres password={pw}"
            f" sslmode=verify-full sslrootcert={root}"
        )

    psycopg2.connect(dsn(password, ca), connect_timeout=5).close()
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(dsn("wrong", ca), connect_timeout=5)
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(dsn(password, str(other_ca / "ca.pem")), connect_timeout=5)


# ---- MongoDB wire protocol (FerretDB): a client certificate of our CA is the credential


def test_mongo_refuses_a_client_without_a_certificate_or_with_another_cas(state, ca, other_ca):
    def ping(**tls: str) -> None:
        with MongoClient(
            f"mongodb://{HOST}:27017/",
            tls=True,
            tlsCAFile=ca,
            serverSelectionTimeoutMS=3_000,
            **tls,
        ) as client:
            client.admin.command("ping")

    ping(tlsCertificateKeyFile=str(state / "pki" / "worker-mongo.bundle.pem"))
    bundle = other_ca / "operator.bundle.pem"
    bundle.write_text(
        (other_ca / "operator.pem").read_text() + (other_ca / "operator.key").read_text()
    )
    for tls in [{}, {"tlsCertificateKeyFile": str(bundle)}]:
        with pytest.raises(PyMongoError):
            ping(**tls)


def test_status_says_the_stack_is_secure():
    out = subprocess.run(
        [str(REPO / "scripts/services"), "status"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "mode: secure" in out.stdout
    assert "127.0.0.1:5671" in out.stdout


def test_a_failover_checks_the_certificate_of_the_node_it_reaches(state, ca):
    """kombu fills in the host name to check from the first node it dials, into TLS options
    every connection shares: without a copy per connection, failing over from a node that is
    away to one that answers would check the answering node against the absent one's name."""
    password = secret(state, "beat", "rabbitmq")
    away, live = "127.0.0.2", HOST  # nothing listens on the first
    url = f"amqps://beat:{password}@{away}:5671//;amqps://beat:{password}@{live}:5671//"
    settings = Settings(celery_broker_url=url, celery_broker_cafile=ca)
    with connect(settings) as conn:
        reach(conn)
        assert conn.connected
        assert conn.transport.client.hostname == live
        assert conn.ssl["server_hostname"] is None  # the shared options untouched
