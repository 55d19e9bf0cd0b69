"""The table of principals and what the secure stack is provisioned from: the rights stay
narrow, secrets stay in files, docs/security.md names every principal (the servers themselves
are held to the table by tests/security)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from bookstore import provision
from bookstore.config import ConfigError, Settings, read
from bookstore.principals import components, find, principals, rabbitmq_permissions
from tests.support import REPO, TABLE


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("secure")
    provision.init(directory, TABLE, provision.SINGLE)
    return directory


def test_the_security_page_names_every_component():
    page = (REPO / "docs/security.md").read_text()
    table = page[page.index("| principal |") :].split("\n\n")[0]
    named = {
        n for row in table.splitlines()[2:] for n in re.findall(r"`([^`]+)`", row.split("|")[1])
    }
    assert named == {c for c, _, _ in components(TABLE)}


def test_a_worker_may_touch_its_own_queue_and_celerys_own_objects_only():
    configure, write, read_ = rabbitmq_permissions(find(TABLE, "worker-postgres"), TABLE)
    for name in ("postgres", "celery_delayed_3", "postgres@host.celery.pidbox", "celery.pidbox"):
        assert re.fullmatch(configure, name) and re.fullmatch(read_, name), name
    for name in ("mongo", "redis", "audit", "generate", "parked", "mongo@host.celery.pidbox."):
        assert not re.fullmatch(read_, name), name
    assert re.fullmatch(write, "parked")  # declaring a queue that dead-letters into it


def test_secrets_and_keys_are_files_only_their_owner_reads(state):
    private = [
        *state.glob("principals/*/*"),
        *state.glob("pki/*.key"),
        *state.glob("pki/*.bundle.pem"),
    ]
    assert len(private) > 50
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_principals_environment_names_its_secrets_files_never_their_values(state):
    passwords = {p.read_text().strip() for p in state.glob("principals/*/*.password")}
    for p in principals(TABLE):
        env = provision.environment(state, TABLE, p.name)
        shown = "\n".join(f"{k}={v}" for k, v in env.items())
        assert not [s for s in passwords if s in shown], p.name
        assert not {"KAFKA_SASL_PASSWORD", "CELERY_BROKER_URL", "REDIS_URL", "POSTGRES_DSN"} & set(
            env
        )
    bridge = provision.environment(state, TABLE, "bridge")
    assert {"KAFKA_SASL_PASSWORD_FILE", "CELERY_BROKER_URL_FILE"} <= set(bridge)
    assert not {"REDIS_URL_FILE", "POSTGRES_DSN_FILE", "MONGO_URI"} & set(bridge)


def test_the_servers_get_hashes_not_passwords(state):
    passwords = {p.read_text().strip() for p in state.glob("principals/*/*.password")}
    given = "\n".join(
        [
            str(provision.rabbitmq_definitions(state, TABLE, provision.SINGLE)),
            provision.redis_acl(state, TABLE, provision.SINGLE),
            provision.postgres_roles(state, TABLE, provision.SINGLE),
        ]
    )
    assert not [s for s in passwords if s in given]
    assert "user default off" in given


def test_an_unknown_principal_is_named_with_the_known_ones(state):
    with pytest.raises(KeyError, match="known: .*bridge"):
        provision.environment(state, TABLE, "nobody")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "bridge"},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "bridge", "KAFKA_SASL_PASSWORD": "x"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE"),
        ({"CELERY_BROKER_CAFILE": "/nonexistent/ca.pem"}, "CELERY_BROKER_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_incomplete_security_settings_are_refused_by_name(monkeypatch, env, named):
    for key in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
        monkeypatch.delenv(key + "_FILE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named) as refused:
        read(Settings)
    assert "x'" not in str(refused.value)  # a password is never shown
