"""What the tests share, in one place (the benchmarks use it too): the repository's path, the
suite's own topics and vhost, polling real state, running the product's processes (reaped at
teardown), a command's result, a free port, an HTTP status, a test database."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bookstore import entities
from bookstore.config import Settings
from bookstore.namespace import Namespace

REPO = Path(__file__).resolve().parent.parent

# The suite's own Kafka topics (KAFKA_TOPIC_PREFIX, suite_environment): test.customers, ...
# The product's topics (customers, ...) are never written by a test.
TOPIC_PREFIX = "test."
TOPICS = entities.Topics(TOPIC_PREFIX)
TABLE = TOPICS.table  # the built-in entities
# Where the tests keep their stores (tests/integration/conftest.py): a namespace of their own.
TEST_NAMESPACE = Namespace("bookstore_test", {"redis_db": 1})
CUSTOMERS, BOOKS, ORDERS, DEAD_LETTERS = map(
    TOPICS.of, (entities.CUSTOMERS, entities.BOOKS, entities.ORDERS, entities.DEAD_LETTERS)
)


SUITE_MARKER = "BOOKSTORE_TESTS_ENVIRONMENT"


@functools.cache
def suite_environment() -> tuple[Settings, dict[str, str]]:
    """Set the tests' configuration in this process's environment (once: the unit and
    integration tiers' conftest.py do it before anything reads it); the settings their
    namespace lies beside, and what was set.

    The tests share the local servers with a developer's running stack, but never touch its
    data: their own Kafka topics (a prefix: test.customers, ...), consumer groups, RabbitMQ vhost
    (where they purge the Celery queues), and every store in a namespace of their own, by the
    product's own mechanism (a PostgreSQL and a MongoDB database, a Redis database, an audit log
    in a temporary directory; a store added to the entity table is moved there too).
    tests/unit/test_settings.py checks that every place the product keeps data is moved."""
    from bookstore.config import load_settings
    from bookstore.setting_files import read_into_environment

    if os.environ.get(SUITE_MARKER):  # a test's own pytest run: its environment is set already
        return load_settings(), {}
    read_into_environment("CELERY_BROKER_URL")  # the secure stack's is a file: moved to a vhost
    base = {
        SUITE_MARKER: "1",
        "KAFKA_TOPIC_PREFIX": TOPIC_PREFIX,
        # the servers the environment names (a cluster: `eval "$(scripts/services env)"`)
        "CELERY_BROKER_URL": on_vhost(
            os.environ.get("CELERY_BROKER_URL") or "amqp://guest:guest@localhost:5672//",
            "bookstore_test",
        ),
        "BRIDGE_GROUP_ID": "bookstore-bridge-test",
        # the namespace's audit log goes beside this one, in a directory of the session's own
        "AUDIT_LOG_PATH": os.path.join(tempfile.mkdtemp(prefix="bookstore-tests-"), "messages.log"),
        # Never call out of the machine from tests: a closed loopback port makes every process
        # the tests start (beat, generate workers) use the offline Faker fallback at once.
        "GOOGLE_BOOKS_BASE_URL": "http://127.0.0.1:9/books/v1",
        # a developer's .env must not reach the tests or the processes they start
        "BOOKSTORE_ENV_FILE": "",
    }
    os.environ.update(base)
    live = load_settings(stores=True)  # every store's read now, before the namespace moves them
    env = {**base, **TEST_NAMESPACE.env(live)}
    read_into_environment(*env)  # then replaced by the tests' own values
    os.environ.update(env)
    return live, env


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


# A line a process complains in; Celery's deprecation warnings about its own settings aside.
_STACKS = re.compile(r"(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):")
_DUMP = re.compile(r"^(Current thread 0x|Thread 0x|  File )| WARNING bridge\.fanout: state")
_COMPLAINT = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback)\b(?!.*DeprecationWarning)")

# Set on a test's item when its call failed (tests/conftest.py): its processes' logs are shown.
CALL_FAILED = pytest.StashKey[bool]()


class Processes:
    """Start real product processes (the tests' and the benchmarks'), each logging to
    LOG_DIR/NAME.log, with this process's environment plus `env` (and a start's own); every one
    is stopped (and its group killed) at teardown."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None):
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.procs: list[subprocess.Popen] = []
        self.named: dict[str, subprocess.Popen] = {}

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, via: Sequence[str] = ()
    ) -> subprocess.Popen:
        """`python ARGS`, through the command `via` if given (`scripts/as PRINCIPAL`)."""
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [*via, sys.executable, *args],
            cwd=REPO,
            env={**os.environ, **self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = self.log_dir / f"{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        self.named[name] = proc
        return proc

    def worker(
        self, queue: str, *extra: str, concurrency: int = 1, pool: str = "prefork", **kw
    ) -> subprocess.Popen:
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
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            *extra,
            **kw,
        )

    def beat(self, schedule: Path, every_seconds: float, **kw) -> subprocess.Popen:
        """Beat, ticking every `every_seconds`, logging each publish RabbitMQ confirmed (its
        debug lines: "sent. id->")."""
        env = {**kw.pop("env", {}), "GENERATE_INTERVAL_SECONDS": str(every_seconds)}
        args = ("-m", "celery", "-A", "tasks", "beat", "--loglevel=DEBUG")
        return self.start("beat", *args, f"--schedule={schedule}", env=env, **kw)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def print_logs_if_failed(self, request: pytest.FixtureRequest, lines: int = 8) -> None:
        """After a failed test, the last `lines` warnings and errors each process logged, in
        its report (CI shows a report's end only: a stall is then explained by what the bridge
        and the workers said), then each running bridge's threads' stacks and partitions' state
        (it dumps them on SIGUSR1); the whole logs stay in LOG_DIR."""
        if not request.node.stash.get(CALL_FAILED, False):
            return
        bridges = [(n, p) for n, p in self.named.items() if n.startswith("bridge")]
        for _, proc in bridges:
            if proc.poll() is None:  # its stacks and each partition's state, into its log
                os.kill(proc.pid, signal.SIGUSR1)
        time.sleep(2 if bridges else 0)
        print(f"---- the processes' logs: {self.log_dir}")
        for name in self.named:
            logged = self.log(name).splitlines()
            said = [x for x in logged if _COMPLAINT.search(x) and not _DUMP.search(x)]
            if said:
                print(f"---- {name}: last {min(lines, len(said))} of {len(said)} warnings/errors")
                print("\n".join(x[:300] for x in said[-lines:]))
        for name, _ in bridges:
            logged = self.log(name).splitlines()
            start = next((i for i, x in enumerate(logged) if _STACKS.match(x)), None)
            if start is not None:
                print(f"---- {name}: its threads' stacks, then where each partition stands")
                print("\n".join(x[:300] for x in logged[start:] if _DUMP.search(x)))

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


def group_members(settings, group: str) -> list[set[tuple[str, int]]]:
    """The partitions each member of a consumer group holds, once the group is stable (a group
    rebalancing, empty or unknown has none)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from bookstore.kafka import security_options

    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **security_options(settings)
    )
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


def purge_task_queues(settings) -> None:
    """Declare and empty every Celery queue of the vhost `settings` name (the tests' or the
    benchmarks'), `parked` too: tasks left by an earlier, interrupted run must not run in this
    one."""
    from bookstore.broker import all_queues, connect, declare, reach

    with connect(settings) as conn:
        declare(reach(conn), settings.entities)
        for queue in all_queues(settings.entities):
            conn.default_channel.queue_purge(queue.name)


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
