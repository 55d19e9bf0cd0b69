"""What the tests share, in one place (the benchmarks use it too): the repository's path, the
suite's own topics and vhost, polling real state, running the product's processes (reaped at
teardown), a command's result, a free port, an HTTP status, a test database."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bookstore import entities

REPO = Path(__file__).resolve().parent.parent

# The suite's own Kafka topics (KAFKA_TOPIC_PREFIX, tests/conftest.py): test.customers, ...
# The product's topics (customers, ...) are never written by a test.
TOPIC_PREFIX = "test."
TOPICS = entities.Topics(TOPIC_PREFIX)
TABLE = TOPICS.table  # the built-in entities
CUSTOMERS, BOOKS, ORDERS, DEAD_LETTERS = map(
    TOPICS.of, (entities.CUSTOMERS, entities.BOOKS, entities.ORDERS, entities.DEAD_LETTERS)
)


def on_vhost(urls: str, vhost: str) -> str:
    """The RabbitMQ node(s) of `urls` (one URL, or a cluster's, `;`-separated) on `vhost`: the
    tests' `bookstore_test` or the benchmarks' `bookstore_bench` (scripts/services creates both),
    where they purge queues without touching a running stack's tasks."""
    return ";".join(urlunsplit(urlsplit(u)._replace(path=f"/{vhost}")) for u in urls.split(";"))


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 300):
    """`python ARGS` to completion (the tests' environment plus `env`), output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def services(*args: str, timeout: float = 300) -> str:
    """`scripts/services ARGS` (the fault suites stop, kill and cut servers with it); its output."""
    result = subprocess.run(
        [str(REPO / "scripts/services"), *args], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"services {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


def _request(url: str, credentials: str | None) -> urllib.request.Request:
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return request


def status(url: str, credentials: str | None = None) -> int | None:
    """HTTP status of a GET, or None while nothing answers yet."""
    try:
        with urllib.request.urlopen(_request(url, credentials), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def get_json(url: str, credentials: str | None = None, timeout: float = 30):
    """The JSON a GET answers (an HTTP error raises)."""
    with urllib.request.urlopen(_request(url, credentials), timeout=timeout) as response:
        return json.load(response)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            worker_name(queue),
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


def worker_name(queue: str) -> str:
    """The Celery node name of the tests' worker for `queue` (`Processes.worker`)."""
    return f"{queue}-test@{socket.gethostname()}"


def start_flower(processes: Processes, port: int, env: dict[str, str]) -> subprocess.Popen:
    """`celery -A tasks flower` on 127.0.0.1:`port` (FLOWER_BASIC_AUTH in `env`)."""
    return processes.start(
        "flower",
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        "--address=127.0.0.1",
        f"--port={port}",
        env={"FLOWER_UNAUTHENTICATED_DEMO": "", **env},
    )


def create_database(settings, name: str) -> None:
    """Create a PostgreSQL database if missing, from the server's `bookstore` database (the
    tests' own may not exist yet; the bookstore role may create databases)."""

    from bookstore.stores.postgres import create_database

    create_database(settings.store("postgres").dsn.rsplit("/", 1)[0] + "/bookstore", name)


def group_members(settings, group: str) -> list[set[tuple[str, int]]]:
    """The partitions each member of a consumer group holds, once the group is stable (a group
    rebalancing, empty or unknown has none)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        described = admin.describe_groups([group])[group]
    except KafkaError as exc:  # e.g. no coordinator yet on a broker just started
        if exc.retriable:
            return []
        raise
    finally:
        admin.close()
    if described["group_state"] != "Stable":
        return []
    return [
        {
            (held["topic"], p)
            for held in member["member_assignment"]["assigned_partitions"]
            for p in held["partitions"]
        }
        for member in described["members"]
    ]


def wait_assigned(settings, group: str, members: int = 1, timeout: float = 60) -> None:
    """Until `members` members of the group each hold partitions (Kafka's view, not a log line)."""
    wait_until(
        lambda: sum(1 for held in group_members(settings, group) if held) >= members,
        timeout,
        f"{members} member(s) of {group} holding partitions",
    )


def wait_drained(queues: tuple[str, ...] | list[str], timeout: float = 120) -> None:
    """Until the Celery queues hold no message and no worker holds a task (running or
    prefetched): RabbitMQ's view and the workers' own, not a pause."""
    from tasks import app

    def drained() -> bool:
        # a connection of its own each time: on a cluster, one to a node that went away fails
        # once, and the next is made to a node that answers
        with app.connection_for_read() as conn:
            try:
                channel = conn.default_channel
                if any(channel.queue_declare(q, passive=True).message_count for q in queues):
                    return False
                inspect = app.control.inspect(timeout=1, connection=conn)
                held = [inspect.active() or {}, inspect.reserved() or {}]
            except (OSError, *conn.connection_errors):
                return False
        return not any(tasks for replies in held for tasks in replies.values())

    wait_until(drained, timeout, f"queues {', '.join(queues)} drained")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """A process's Prometheus metrics: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def try_scrape(port: int) -> dict | None:
    """`scrape`, or None while the endpoint does not answer yet."""
    try:
        return scrape(port)
    except OSError:
        return None
