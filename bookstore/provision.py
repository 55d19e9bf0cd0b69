"""The secure stacks' certificates, secrets and server-side users, from the table of
principals (bookstore/principals.py). Run by `scripts/services up --secure` and by compose:

    python -m bookstore.provision init DIR             certificates and secrets (kept if there)
    python -m bookstore.provision rabbitmq-definitions DIR OUT   users, vhosts, permissions
    python -m bookstore.provision rabbitmq-topology DIR  every vhost's queues (as the operator)
    python -m bookstore.provision redis-acl DIR OUT    ACL users (`user default off`)
    python -m bookstore.provision postgres-roles DIR   SQL for the roles, on stdout
    python -m bookstore.provision postgres-database DATABASE   SQL: its schema, its grants
    python -m bookstore.provision kafka DIR            SCRAM users and ACLs (over mutual TLS)
    python -m bookstore.provision env DIR [PRINCIPAL]  export lines for one principal
    python -m bookstore.provision renew DIR NODE...    new certificates for these server nodes
    python -m bookstore.provision kafka-reload-tls DIR   the brokers read theirs again
    python -m bookstore.provision compose DIR          every secret docker compose mounts
    python -m bookstore.provision servers DIR          compose: Kafka's users, ACLs, topics;
                                                       RabbitMQ's queues (as the operator)

LIVROS_STACK names the stack: single (default), cluster, compose, compose-cluster.
DIR is the stack's state directory: DIR/pki (the development CA, each server node's
certificate, each principal's client certificate) and DIR/principals/PRINCIPAL (one file per
secret, 0600, named after the variable it is: KAFKA_SASL_PASSWORD, CELERY_BROKER_URL, ...);
compose's also DIR/servers/SERVER (the servers' users and own secrets). Servers get only
hashes where they take one (RabbitMQ's salted SHA-256, Redis's SHA-256, PostgreSQL's SCRAM
verifier; Kafka's SCRAM credentials are derived by the client library; MongoDB takes none);
no password is ever on a command line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from bookstore import pki
from bookstore.entities import EntityTable, load_table
from bookstore.principals import (
    BENCH_VHOST,
    DEPLOYMENTS,
    LIVE,
    OPERATOR,
    Deployment,
    Principal,
    find,
    kafka_grants,
    postgres_grants,
    principals,
    rabbitmq_permissions,
    redis_rule,
)

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

SERVERS = ("kafka", "rabbitmq", "redis", "postgres", "mongo")
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Stack:
    """A secure stack: where its clients reach each server (Kafka's clients on 9092, SASL_SSL;
    its brokers' own listener on 9094, mutual TLS; RabbitMQ on 5671), each server node's
    certificate and the names it is reached by, the deployments it serves, and the CA's path
    as its clients see it ("": the state directory's own)."""

    name: str
    kafka: tuple[str, ...]
    rabbitmq: tuple[str, ...]
    nodes: dict[str, tuple[str, ...]]
    redis: str = "127.0.0.1:6379"
    postgres: str = "127.0.0.1:5432"
    mongo: str = "127.0.0.1:27017"
    deployments: tuple[Deployment, ...] = DEPLOYMENTS
    ca: str = ""
    # MongoDB authenticates a user per principal (compose); FerretDB, a client certificate
    mongo_users: bool = False

    @property
    def kafka_internal(self) -> str:
        return ",".join(a.replace(":9092", ":9094") for a in self.kafka)

    def client_ca(self, state: Path) -> str:
        return self.ca or str(pki_dir(state) / "ca.pem")


# The native stacks (scripts/services) share one state directory: every node of both.
_NATIVE_NODES = {
    **{server: (*LOOPBACK, server) for server in SERVERS},
    **{f"kafka-{n}": (f"127.0.1.{n}", f"kafka-{n}", *LOOPBACK) for n in (1, 2, 3)},
    **{f"rabbitmq-{n}": (f"127.0.2.{n}", f"rabbitmq-{n}", *LOOPBACK) for n in (1, 2, 3)},
}
SINGLE = Stack("single", ("127.0.0.1:9092",), ("127.0.0.1:5671",), _NATIVE_NODES)
CLUSTER = Stack(
    "cluster",
    tuple(f"127.0.1.{n}:9092" for n in (1, 2, 3)),
    tuple(f"127.0.2.{n}:5671" for n in (1, 2, 3)),
    _NATIVE_NODES,
)
# docker compose: servers by service name (the first node of each keeps the single one's),
# secrets mounted in /run/secrets, the live deployment only.
_COMPOSE_NODES = {
    **{server: (*LOOPBACK, server) for server in SERVERS},
    **{f"{s}-{n}": (*LOOPBACK, f"{s}-{n}") for s in ("kafka", "rabbitmq") for n in (2, 3)},
}
COMPOSE = Stack(
    "compose",
    ("kafka:9092",),
    ("rabbitmq:5671",),
    _COMPOSE_NODES,
    redis="redis:6379",
    postgres="postgres:5432",
    mongo="mongo:27017",
    deployments=(LIVE,),
    ca="/run/secrets/ca.pem",
    mongo_users=True,
)
COMPOSE_CLUSTER = replace(
    COMPOSE,
    name="compose-cluster",
    kafka=("kafka:9092", "kafka-2:9092", "kafka-3:9092"),
    rabbitmq=("rabbitmq:5671", "rabbitmq-2:5671", "rabbitmq-3:5671"),
)
STACKS = {s.name: s for s in (SINGLE, CLUSTER, COMPOSE, COMPOSE_CLUSTER)}


def current() -> Stack:
    """The stack being provisioned: scripts/services and compose say which (LIVROS_STACK)."""
    name = os.environ.get("LIVROS_STACK") or "single"
    if name not in STACKS:
        raise SystemExit(f"provision: LIVROS_STACK={name!r} is none of {', '.join(STACKS)}")
    return STACKS[name]


def broker_urls(stack: Stack, user: str, secret: str, vhost: str) -> str:
    """Every node's amqps URL, `;`-separated: kombu fails over in turn."""
    creds = f"{quote(user, safe='')}:{quote(secret, safe='')}"
    path = quote(vhost, safe="")
    return ";".join(f"amqps://{creds}@{node}/{path}" for node in stack.rabbitmq)


def _private(path: Path, text: str) -> None:
    """A secret file, 0600 from its first byte, written whole (bookstore.pki's way)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki.write_file(path, text.encode(), private=True)


def pki_dir(state: Path) -> Path:
    return state / "pki"


def bundle(state: Path, name: str) -> Path:
    """NAME's certificate chain and key in one file (Kafka's PEM keystore, pymongo's
    tlsCertificateKeyFile), 0600."""
    return pki_dir(state) / f"{name}.bundle.pem"


def password(state: Path, principal: str, server: str) -> str:
    return (state / "principals" / principal / f"{server}.password").read_text().strip()


def init(state: Path, table: EntityTable, stack: Stack, days: int = 825) -> None:
    """The CA, the server nodes' and principals' certificates, and a password per principal and
    server; what exists is kept (a re-run after `down` finds the same secrets)."""
    directory = pki_dir(state)
    pki.ensure_ca(directory)
    members = principals(table, stack.deployments)
    names = {**stack.nodes, **{p.name: () for p in members}}
    for name, hosts in names.items():
        if not (directory / f"{name}.pem").exists():
            pki.issue(directory, name, hosts, days=days)
        _write_bundle(state, name)  # from the files as they are now (a re-issue included)
    for p in members:
        for server in p.servers:
            _keep_secret(state / "principals" / p.name / f"{server}.password")
        for name, value in setting_files(state, p, stack).items():
            _private(state / "principals" / p.name / name, value)


def _write_bundle(state: Path, name: str) -> None:
    directory = pki_dir(state)
    chain, key = directory / f"{name}.pem", directory / f"{name}.key"
    _private(bundle(state, name), chain.read_text() + key.read_text())


def renew(state: Path, stack: Stack, names: list[str]) -> None:
    """New certificates for the named server nodes: the same names and addresses (a server
    checks that a certificate it reloads still names them), a new key, a new expiry."""
    for name in names:
        if name not in stack.nodes:
            known = ", ".join(stack.nodes)
            raise SystemExit(f"provision: no server node {name!r} (known: {known})")
        pki.issue(pki_dir(state), name, stack.nodes[name])
        _write_bundle(state, name)


def _keep_secret(path: Path) -> None:
    """A new random secret, unless there is one already."""
    if not path.exists():
        _private(path, secrets.token_urlsafe(24) + "\n")


def setting_files(state: Path, p: Principal, stack: Stack) -> dict[str, str]:
    """The principal's secret settings, each a file named after its variable (NAME_FILE)."""
    ca = stack.client_ca(state)
    pw = {s: quote(password(state, p.name, s), safe="") for s in p.servers}
    user = quote(p.name, safe="")
    d = p.deployment
    files = {}
    if "kafka" in p.servers:
        files["KAFKA_SASL_PASSWORD"] = password(state, p.name, "kafka")
    if "rabbitmq" in p.servers:
        files["CELERY_BROKER_URL"] = broker_urls(
            stack, p.name, password(state, p.name, "rabbitmq"), d.vhost
        )
    if "redis" in p.servers:
        files["REDIS_URL"] = f"rediss://{user}:{pw['redis']}@{stack.redis}/0?ssl_ca_certs={ca}"
    if "postgres" in p.servers:
        files["POSTGRES_DSN"] = (
            f"postgresql://{user}:{pw['postgres']}@{stack.postgres}/{d.database}"
            f"?sslmode=verify-full&sslrootcert={ca}"
        )
    if "mongo" in p.servers and stack.mongo_users:
        files["MONGO_URI"] = (
            f"mongodb://{user}:{pw['mongo']}@{stack.mongo}/?authSource=admin&tls=true&tlsCAFile={ca}"
        )
    return files


def environment(state: Path, table: EntityTable, name: str = OPERATOR) -> dict[str, str]:
    """The variables that give a process exactly `name`'s rights on the native stack that is up:
    secrets as NAME_FILE paths."""
    stack = current()
    p = find(table, name)
    own = state / "principals" / p.name
    ca = str(pki_dir(state) / "ca.pem")
    d = p.deployment
    env = {"KAFKA_TOPIC_PREFIX": d.topic_prefix, "BRIDGE_GROUP_ID": d.bridge_group}
    env["KAFKA_BOOTSTRAP_SERVERS"] = ",".join(stack.kafka)
    if "kafka" in p.servers:
        env |= {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": p.name,
            "KAFKA_SASL_PASSWORD_FILE": str(own / "KAFKA_SASL_PASSWORD"),
            "KAFKA_SSL_CAFILE": ca,
        }
    if "rabbitmq" in p.servers:
        env |= {
            "CELERY_BROKER_URL_FILE": str(own / "CELERY_BROKER_URL"),
            "CELERY_BROKER_CAFILE": ca,
        }
    if "redis" in p.servers:
        env["REDIS_URL_FILE"] = str(own / "REDIS_URL")
    if "postgres" in p.servers:
        env["POSTGRES_DSN_FILE"] = str(own / "POSTGRES_DSN")
    if "mongo" in p.servers:
        client = bundle(state, p.name)
        env["MONGO_URI"] = (
            f"mongodb://{stack.mongo}/?tls=true&tlsCAFile={ca}&tlsCertificateKeyFile={client}"
        )
    return env


# ---- RabbitMQ


def rabbitmq_hash(secret: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + secret.encode()).digest()).decode()


def rabbitmq_definitions(state: Path, table: EntityTable, stack: Stack) -> dict:
    """Loaded at boot (no `guest`, no default vhost: both are in here or nowhere)."""
    users, permissions = [], []
    vhosts = [*(d.vhost for d in stack.deployments), BENCH_VHOST]
    for p in principals(table, stack.deployments):
        if "rabbitmq" not in p.servers:
            continue
        users.append(
            {
                "name": p.name,
                "password_hash": rabbitmq_hash(password(state, p.name, "rabbitmq")),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"] if p.name == OPERATOR else [],
            }
        )
        configure, write, read = rabbitmq_permissions(p, table)
        for vhost in vhosts if p.name == OPERATOR else [p.deployment.vhost]:
            permissions.append(
                {
                    "user": p.name,
                    "vhost": vhost,
                    "configure": configure,
                    "write": write,
                    "read": read,
                }
            )
    return {
        "users": users,
        "vhosts": [{"name": v} for v in vhosts],
        "permissions": permissions,
    }


def rabbitmq_topology(state: Path, table: EntityTable, stack: Stack) -> None:
    """Every deployment's queues and `parked`, declared by the operator: a worker declares only
    its own queues (and may not bind `parked`), and may start before the bridge."""
    from bookstore.broker import connect, declare, reach
    from bookstore.config import Settings

    secret = password(state, OPERATOR, "rabbitmq")
    for d in stack.deployments:
        url = broker_urls(stack, OPERATOR, secret, d.vhost)
        settings = Settings(
            celery_broker_url=url, celery_broker_cafile=str(pki_dir(state) / "ca.pem")
        )
        with connect(settings) as conn:
            declare(reach(conn), table)


# ---- Redis


def redis_acl(state: Path, table: EntityTable, stack: Stack) -> str:
    lines = ["user default off resetkeys -@all"]
    for p in principals(table, stack.deployments):
        rule = redis_rule(p)
        if rule is not None:
            digest = hashlib.sha256(password(state, p.name, "redis").encode()).hexdigest()
            lines.append(f"user {p.name} on #{digest} resetchannels {rule}")
    return "\n".join(lines) + "\n"


# ---- PostgreSQL


def scram_verifier(secret: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier (what `ALTER ROLE ... PASSWORD` stores), so the
    password itself never reaches the server, its logs or a statement."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def postgres_roles(state: Path, table: EntityTable, stack: Stack) -> str:
    """Every principal's role (created or its password reset), the deployments' databases
    owned by their operators; run by the superuser over the local socket."""
    sql = []
    for p in principals(table, stack.deployments):
        if "postgres" not in p.servers:
            continue
        verifier = scram_verifier(password(state, p.name, "postgres"))
        extra = " CREATEDB" if p.administers else ""
        sql.append(
            f"SELECT 'CREATE ROLE \"{p.name}\"' WHERE NOT EXISTS"
            f" (SELECT FROM pg_roles WHERE rolname = '{p.name}')\\gexec\n"
            f"ALTER ROLE \"{p.name}\" LOGIN{extra} PASSWORD '{verifier}';"
        )
    for d in stack.deployments:
        owner = d.principal(OPERATOR)
        sql.append(
            f"SELECT 'CREATE DATABASE {d.database} OWNER \"{owner}\"' WHERE NOT EXISTS"
            f" (SELECT FROM pg_database WHERE datname = '{d.database}')\\gexec"
        )
    return "\n".join(sql) + "\n"


def postgres_database(table: EntityTable, database: str) -> str:
    """Run in `database` by the superuser: the schema, made as the database's owner (so it owns
    the tables), then the workers' rights on them."""
    from bookstore.stores.postgres import SCHEMA

    (deployment,) = [d for d in DEPLOYMENTS if d.database == database]
    grants = [
        stmt + ";"
        for p in principals(table)
        if p.deployment == deployment
        for stmt in postgres_grants(p)
    ]
    owner = deployment.principal(OPERATOR)
    quiet = "SET client_min_messages TO warning;"  # not "already exists, skipping"
    return "\n".join([quiet, f'SET ROLE "{owner}";', SCHEMA, "RESET ROLE;", *grants]) + "\n"


# ---- Kafka


def _operator_admin(state: Path, stack: Stack) -> KafkaAdminClient:
    """An admin client as the operator, authenticated by its certificate on the brokers' own
    listener (mutual TLS: it needs no SCRAM user)."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=stack.kafka_internal,
        security_protocol="SSL",
        ssl_cafile=str(pki_dir(state) / "ca.pem"),
        ssl_certfile=str(pki_dir(state) / f"{OPERATOR}.pem"),
        ssl_keyfile=str(pki_dir(state) / f"{OPERATOR}.key"),
        client_id="bookstore-provision",
    )


def kafka_reload_tls(state: Path, stack: Stack) -> None:
    """Every broker reads its certificate and key (pki/NAME.pem, .key) again, for the new
    connections of its client listener: a keystore location altered to itself makes Kafka
    reload a file that changed (the brokers' and controllers' own listeners keep theirs until a
    restart)."""
    from kafka.admin import ConfigResource

    from bookstore.kafka import alter_configs

    admin = _operator_admin(state, stack)
    try:
        key = "listener.name.client.ssl.keystore.location"
        brokers = [
            (str(b["broker_id"]), b["host"], _kafka_node(stack, b["host"]))
            for b in admin.describe_cluster()["brokers"]
        ]
        for _, _, name in brokers:
            _write_bundle(state, name)  # from the certificate and key as they are now
        resources = [
            ConfigResource("BROKER", broker, configs={key: str(bundle(state, name))})
            for broker, _, name in brokers
        ]
        refused = alter_configs(admin, resources)
        if refused:
            raise SystemExit(f"provision: Kafka did not reload its certificates: {refused}")
    finally:
        admin.close()
    # a broker applies the change when it reads it from the metadata log: soon, not at once
    for _, host, name in brokers:
        _until_served(f"{host}:9092", state, name)


def _until_served(address: str, state: Path, name: str, timeout: float = 30) -> None:
    """Until a new connection to `address` is shown NAME's certificate as its file has it."""
    import time

    from cryptography import x509

    expected = x509.load_pem_x509_certificate((pki_dir(state) / f"{name}.pem").read_bytes())
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            served = pki.served_certificate(host, int(port), pki_dir(state) / "ca.pem", timeout=3)
            if served.serial_number == expected.serial_number:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"provision: {address} still shows its old certificate after {timeout:.0f} s")


def _kafka_node(stack: Stack, host: str) -> str:
    """The Kafka node at `host`: the one whose certificate names it first (its own address)."""
    for name, hosts in stack.nodes.items():
        if name.startswith("kafka") and hosts[0] == host:
            return name
    raise SystemExit(f"provision: no Kafka node of the {stack.name} stack is at {host}")


def kafka(state: Path, table: EntityTable, stack: Stack) -> None:
    """SCRAM credentials and ACLs for every principal, as the operator authenticated by its
    client certificate on the brokers' internal listener (before any SCRAM user exists)."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
        UserScramCredentialUpsertion,
    )

    admin = _operator_admin(state, stack)
    try:
        members = [p for p in principals(table, stack.deployments) if "kafka" in p.servers]
        upserts = [
            UserScramCredentialUpsertion(p.name, "SCRAM-SHA-512", password(state, p.name, "kafka"))
            for p in members
        ]
        failed = {u: e for u, e in admin.alter_user_scram_credentials(upserts).items() if e}
        if failed:
            raise SystemExit(f"provision: Kafka refused SCRAM credentials: {failed}")
        acls = [
            ACL(
                f"User:{p.name}",
                "*",
                ACLOperation[operation],
                ACLPermissionType.ALLOW,
                ResourcePattern(
                    ResourceType[g.resource], g.name, ACLResourcePatternType[g.pattern]
                ),
            )
            for p in members
            for g in kafka_grants(p, table)
            for operation in g.operations
        ]
        result = admin.create_acls(acls)
        _ensure_topics(state, table, stack)
        if result["failed"]:  # errors, not raised, and without their ACL: those not created
            refused = [str(acl) for acl in acls if acl not in result["succeeded"]]
            raise SystemExit(f"provision: Kafka refused ACLs {refused}: {result['failed']}")
    finally:
        admin.close()


def _ensure_topics(state: Path, table: EntityTable, stack: Stack) -> None:
    """Every deployment's topics, created and configured by the operator (the generator, which
    may start first, creates none)."""
    from bookstore.config import Settings
    from bookstore.topic_config import ensure_topics

    ssl = pki_dir(state)
    for d in stack.deployments:
        settings = Settings(
            kafka_bootstrap_servers=stack.kafka_internal,
            kafka_security_protocol="SSL",
            kafka_sasl_username="",  # not the caller's: its certificate is the operator's
            kafka_sasl_password="",
            kafka_ssl_cafile=str(ssl / "ca.pem"),
            kafka_ssl_certfile=str(ssl / f"{OPERATOR}.pem"),
            kafka_ssl_keyfile=str(ssl / f"{OPERATOR}.key"),
            kafka_topic_prefix=d.topic_prefix,
        ).running(table)
        ensure_topics(settings)


# ---- docker compose


def compose(state: Path, table: EntityTable) -> None:
    """Every file docker-compose.yml mounts as a secret: the certificates, each principal's
    settings (the cluster's broker URLs in PRINCIPAL/cluster/), the servers' users and their own
    passwords. Compose outside Swarm bind-mounts a secret with its file's owner and mode, and
    each server reads it as its image's own user: the files are 0644 in a directory only its
    owner enters (0700); the CA's key, which no container gets, stays 0600."""
    init(state, table, COMPOSE)
    for p in principals(table, COMPOSE.deployments):
        if "rabbitmq" in p.servers:
            secret = password(state, p.name, "rabbitmq")
            url = broker_urls(COMPOSE_CLUSTER, p.name, secret, p.deployment.vhost)
            _private(state / "principals" / p.name / "cluster" / "CELERY_BROKER_URL", url)
    servers = state / "servers"
    _keep_secret(servers / "postgres" / "superuser.password")
    _keep_secret(servers / "mongo" / "root.password")
    _keep_secret(servers / "grafana" / "admin.password")
    if not (flower := state / "principals" / "flower" / "FLOWER_BASIC_AUTH").exists():
        _private(flower, f"admin:{secrets.token_urlsafe(18)}")
    if not (cookie := servers / "rabbitmq" / "erlang.cookie").exists():
        _private(cookie, secrets.token_hex(32))  # what Erlang accepts: letters and digits
    definitions = rabbitmq_definitions(state, table, COMPOSE)
    _private(servers / "rabbitmq" / "definitions.json", json.dumps(definitions, indent=1))
    _private(servers / "redis" / "users.acl", redis_acl(state, table, COMPOSE))
    database = LIVE.database
    _private(
        servers / "postgres" / "init.sql",
        postgres_roles(state, table, COMPOSE)
        + f"\\connect {database}\n"
        + postgres_database(table, database),
    )
    _private(servers / "mongo" / "users.js", mongo_users(state, table, COMPOSE))
    state.chmod(0o700)
    for path in state.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        elif path != pki_dir(state) / f"{pki.CA}.key":
            path.chmod(0o644)


def mongo_users(state: Path, table: EntityTable, stack: Stack) -> str:
    """For mongosh, run once by the image on an empty volume: a user per principal that holds
    MongoDB credentials, with readWrite on the store's database (the operator: root). MongoDB
    takes no precomputed verifier, so this file holds the passwords themselves."""
    from bookstore.stores.mongo import MongoSettings

    database = MongoSettings.model_fields["db"].default
    lines = ['const admin = db.getSiblingDB("admin");']
    for p in principals(table, stack.deployments):
        if "mongo" in p.servers:
            role = {"role": "root", "db": "admin"}
            if not p.administers:
                role = {"role": "readWrite", "db": database}
            user = {"user": p.name, "pwd": password(state, p.name, "mongo"), "roles": [role]}
            lines.append(f"admin.createUser({json.dumps(user)});")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    usage = __doc__.split("\n\n")[1]
    if len(argv) < 2:
        sys.stderr.write(usage + "\n")
        return 2
    command, state = argv[0], Path(argv[1])
    table = load_table()
    stack = current()
    if command == "init":
        init(state, table, stack)
    elif command == "rabbitmq-definitions" and len(argv) == 3:
        definitions = rabbitmq_definitions(state, table, stack)
        _private(Path(argv[2]), json.dumps(definitions, indent=1))
    elif command == "rabbitmq-topology":
        rabbitmq_topology(state, table, stack)
    elif command == "redis-acl" and len(argv) == 3:
        _private(Path(argv[2]), redis_acl(state, table, stack))
    elif command == "postgres-roles":
        sys.stdout.write(postgres_roles(state, table, stack))
    elif command == "postgres-database" and len(argv) == 3:
        sys.stdout.write(postgres_database(table, argv[2]))
    elif command == "kafka":
        kafka(state, table, stack)
    elif command == "compose":
        compose(state, table)
    elif command == "renew" and len(argv) > 2:
        renew(state, stack, argv[2:])
    elif command == "kafka-reload-tls":
        kafka_reload_tls(state, stack)
    elif command == "servers":
        kafka(state, table, stack)
        rabbitmq_topology(state, table, stack)
    elif command == "env" and len(argv) <= 3:
        try:
            env = environment(state, table, *argv[2:])
        except KeyError as exc:
            sys.stderr.write(f"services: {exc.args[0]}\n")
            return 2
        for key, value in env.items():
            sys.stdout.write(f"export {key}='{value}'\n")
    else:
        sys.stderr.write(usage + "\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
