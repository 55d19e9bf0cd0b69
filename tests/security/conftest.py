"""The security tier: the secure stack (`scripts/services up --secure`: TLS only, a user per
component) in a network namespace of its own (`scripts/in-netns`), held to the table of
principals (bookstore/principals.py). `scripts/test` runs it after the other tiers;
`scripts/test --security` alone.

Every refusal is paired with the same request succeeding with the right credentials, so a test
cannot pass because a server is merely down."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Every variable that carries a server's address, TLS trust or credentials: dropped before a
# principal's own are set, so a process holds exactly that principal's (as scripts/as does).
CREDENTIALS = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
    "CELERY_BROKER_URL",
    "CELERY_BROKER_CAFILE",
    "REDIS_URL",
    "POSTGRES_DSN",
    "MONGO_URI",
)


def principal_env(name: str) -> dict[str, str]:
    """`scripts/services env --as NAME`, as a dict."""
    out = subprocess.run(
        [str(REPO / "scripts/services"), "env", "--as", name],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    return env


def process_env(name: str, **extra: str) -> dict[str, str]:
    """This process's environment with `name`'s credentials in place of any other's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in CREDENTIALS and k.removesuffix("_FILE") not in CREDENTIALS
    }
    return {**env, **principal_env(name), "BOOKSTORE_ENV_FILE": "", **extra}


@contextlib.contextmanager
def acting_as(name: str, **extra: str) -> Iterator[None]:
    """This process's environment as `name`'s for the block (settings read inside it)."""
    env, saved = process_env(name, **extra), dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_of(name: str, **extra: str):
    from bookstore.config import load_settings

    with acting_as(name, **extra):
        return load_settings(stores=True)


@pytest.fixture(scope="session")
def state() -> Path:
    """The secure stack's state directory (certificates, secrets)."""
    base = Path(os.environ.get("SERVICES_DIR") or REPO / ".services")
    secure = base if (base / "up").exists() else base / "secure"
    if not (secure / "up").exists():
        pytest.fail(
            "the security tier runs against `scripts/services up --secure` inside "
            "scripts/in-netns: run `scripts/test --security`"
        )
    return secure


@pytest.fixture(scope="session")
def ca(state: Path) -> str:
    return str(state / "pki" / "ca.pem")


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory) -> Path:
    """A CA of its own, with a server and a client certificate: trusted by nobody here."""
    from bookstore import pki

    directory = tmp_path_factory.mktemp("other-ca")
    pki.ensure_ca(directory)
    pki.issue(directory, "operator", ("127.0.0.1", "localhost"))
    return directory
