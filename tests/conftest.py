"""Shared fixtures: real servers (started by scripts/services), isolated test namespaces, and
real processes (workers, bridge) started and reaped by the tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The tests share the local servers with a developer's running stack, but keep their data apart:
# their own PostgreSQL database, MongoDB database, Redis db and RabbitMQ vhost (where they purge
# the Celery queues). Kafka topics have fixed names (docs/contracts.md): every test reads them
# with a consumer group of its own that starts at their current end.
TEST_ENV = {
    "POSTGRES_DSN": "postgresql://bookstore:bookstore@localhost:5432/bookstore_test",
    "MONGO_DB": "bookstore_test",
    "REDIS_URL": "redis://localhost:6379/1",
    "CELERY_BROKER_URL": "amqp://guest:guest@localhost:5672/bookstore_test",
    "BRIDGE_GROUP_ID": "bookstore-bridge-test",
    # Never call out of the machine from tests: a closed loopback port makes every process the
    # tests start (beat, generate workers) use the offline Faker fallback at once.
    "GOOGLE_BOOKS_BASE_URL": "http://127.0.0.1:9/books/v1",
    # a developer's .env must not reach the tests or the processes they start
    "BOOKSTORE_ENV_FILE": "",
}
os.environ.update(TEST_ENV)


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.2):
    """Poll until predicate() is truthy; fail the test naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Processes:
    """Start real product processes; every one is stopped (and its group killed) at teardown."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = self.log_dir / f"{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def worker(self, queue: str, *extra: str, concurrency: int = 1, **kw) -> subprocess.Popen:
        return self.start(
            f"worker-{queue}",
            "-m",
            "celery",
            "-A",
            "tasks",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}-test@%h",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            *extra,
            **kw,
        )

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers such as prefork children


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture(scope="session")
def settings():
    from bookstore.config import load_settings

    return load_settings()


def create_database(settings, name: str) -> None:
    """Create a PostgreSQL database if missing, from the server's `bookstore` database (the
    tests' own may not exist yet; the bookstore role may create databases)."""

    from bookstore.namespace import create_postgres_database

    admin_dsn = settings.postgres_dsn.rsplit("/", 1)[0] + "/bookstore"
    create_postgres_database(settings.replace(postgres_dsn=admin_dsn), name)


@pytest.fixture(scope="session", autouse=True)
def _test_database(request, settings) -> None:
    """The tests' own PostgreSQL database, apart from a running stack's (unless only the unit
    tier runs: it needs no server)."""
    if all(item.get_closest_marker("unit") for item in request.session.items):
        return
    create_database(settings, settings.postgres_dsn.rsplit("/", 1)[1])
