"""What the benchmarks share: the workload, a run's own stores and consumer group, the processes
it starts, and the CPU they and the servers spend (psutil).

Every run has stores of its own (the product's namespace mechanism: the namespace `bench`, a
PostgreSQL and a MongoDB database, Redis database 4, an audit log in a temporary directory, and
whatever a store added to the entity table keeps), emptied before it starts; topics of its own
(KAFKA_TOPIC_PREFIX `bench.` unless set) and RabbitMQ's vhost `bookstore_bench`, whose task
queues it purges: a stack running alongside on the same servers keeps its data and its tasks.
The workload covers every entity of the table (each model's own examples), so a row added to it
is measured with no change here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import psutil
from kafka import KafkaProducer

from bookstore.config import Settings, load_settings
from bookstore.entities import AUDIT_QUEUE, EntityTable
from bookstore.kafka import client_options
from bookstore.namespace import Namespace
from bookstore.setting_files import read_into_environment
from tests.support import Processes, on_vhost, purge_task_queues

REPO = Path(__file__).resolve().parent.parent

# Each server's processes, as `scripts/services` names them: on the single stack, or on the
# three-node one (when KAFKA_BOOTSTRAP_SERVERS names several brokers).
SERVERS = {name: (name,) for name in ("kafka", "postgres", "mongo", "redis", "rabbitmq")}
CLUSTER_SERVERS = {
    **SERVERS,
    "kafka": ("kafka-1", "kafka-2", "kafka-3"),
    "rabbitmq": ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3"),
}
NAMESPACE = Namespace("bench", {"redis_db": 4})  # every run's stores, emptied before it
VHOST = "bookstore_bench"  # created by scripts/services


# Settings a run gives its processes as values of its own (the vhost's broker URL, the
# namespace's stores): one given as NAME_FILE (the secure stack's) is read here instead.
_OVERRIDDEN = ("CELERY_BROKER_URL", "POSTGRES_DSN", "MONGO_URI", "REDIS_URL")


def bench_settings() -> Settings:
    """The settings of a benchmark and of every process it starts: topics of its own, the
    benchmarks' vhost on the broker(s) CELERY_BROKER_URL names, an audit log of its own."""
    # never the live topics (an empty prefix, as `scripts/services env` prints it, is theirs)
    os.environ["KAFKA_TOPIC_PREFIX"] = os.environ.get("KAFKA_TOPIC_PREFIX") or "bench."
    read_into_environment(*_OVERRIDDEN)
    broker = (
        os.environ.get("CELERY_BROKER_URL") or Settings.model_fields["celery_broker_url"].default
    )
    os.environ["CELERY_BROKER_URL"] = on_vhost(broker, VHOST)
    scratch = Path(tempfile.mkdtemp(prefix="bench-"))
    os.environ["AUDIT_LOG_PATH"] = str(scratch / "messages.log")  # the runs' go beside it
    return load_settings(stores=True)


# --- the workload -------------------------------------------------------------------------------


def records(n: int, table: EntityTable) -> list[tuple[str, bytes, bytes]]:
    """n valid (entity, key, value) records, as many of each entity of `table` (its model's
    examples, in 50 versions: orders of 50 customers), interleaved."""
    rows = table.rows
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        key = str(uuid.uuid4())
        value = row.model_class().example(key, 1 + i // len(rows) % 50)
        out.append((row.name, key.encode(), json.dumps(value).encode()))
    return out


def per_store(workload: list[tuple[str, bytes, bytes]], table: EntityTable) -> dict[str, int]:
    """Records each store must hold once the workload is in: an entity's, and the audit log all."""
    counts = Counter(table.by_name[entity].queue for entity, _, _ in workload)
    return {**{e.queue: counts[e.queue] for e in table}, AUDIT_QUEUE: len(workload)}


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(**client_options(settings), acks="all", linger_ms=5)


# --- a run's own stores, group and processes ------------------------------------------------


class Run:
    """One run's own: the benchmark's namespace emptied, a consumer group, a directory for its
    processes' logs and reports, and the environment they run with. `start` offsets: where its
    consumer groups start (the backlog's first record), None for the current end."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None):
        self.settings = settings
        self.dir = Path(tempfile.mkdtemp(prefix="bench-run-"))
        self.group = f"bench-{uuid.uuid4().hex[:8]}"
        self.stores = NAMESPACE.reset(settings)  # the run's stores, as its processes see them
        self.events = self.dir / "events.jsonl"
        self.events.touch()
        self.processes = Processes(
            self.dir,
            {
                **NAMESPACE.env(settings),
                "BRIDGE_GROUP_ID": self.group,
                "GO_FILE": str(self.dir / "go"),
                "BENCH_EVENTS": str(self.events),
                # the stack measured: the single one, or the three-node one (bench/cluster.py)
                "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
                "CELERY_BROKER_URL": settings.celery_broker_url,
                **(env or {}),
            },
        )

    def workers(self) -> list[str]:
        """A worker per queue the bridge publishes to, reporting to the run (bench/probe.py), on
        the pool WORKER_POOL names (prefork by default, as the Procfile's; e.g. `--config
        NAME:WORKER_POOL=solo` compares another) with WORKER_CONCURRENCY processes (the
        Procfile's variable; 1 by default here); once every one is ready, their queues."""
        purge_task_queues(self.settings)
        queues = list(self.settings.entities.bridge_queues)
        env = self.processes.env
        for queue in queues:
            self.processes.worker(
                queue,
                "--include",
                "bench.probe",
                pool=env.get("WORKER_POOL") or "prefork",
                concurrency=int(env.get("WORKER_CONCURRENCY") or 1),
            )
        while {e["queue"] for e in self.reported("ready")} < set(queues):
            time.sleep(0.05)
        return queues

    def start_bridge(self) -> float:
        """The bridge; when it reported holding its partitions (its own log line)."""
        self.processes.start("bridge", "-m", "bridge")
        while not (assigned := ASSIGNED.search(self.processes.log("bridge"))):
            time.sleep(0.01)
        return log_time(assigned.group(1))

    def handled(self) -> dict[str, list[tuple[float, int]]]:
        """Per queue, (when, records handled so far) after each task, as the workers reported
        it (bench/probe.py), in time order."""
        steps: dict[str, list[tuple[float, int]]] = {}
        for event in sorted(self.reported("done"), key=lambda e: e["at"]):
            queue = steps.setdefault(event["queue"], [])
            queue.append((event["at"], (queue[-1][1] if queue else 0) + event["records"]))
        return steps

    def reported(self, kind: str) -> list[dict]:
        """The events of `kind` the run's workers reported (bench/probe.py)."""
        return events(self.events.read_text(), kind)

    def pids(self, prefix: str = "") -> list[int]:
        return [p.pid for name, p in self.processes.named.items() if name.startswith(prefix)]

    def stop(self) -> None:
        self.processes.stop_all()


def server_pids(settings: Settings) -> dict[str, list[int]]:
    """The processes of every server of the stack `settings` point at."""
    servers = CLUSTER_SERVERS if "," in settings.kafka_bootstrap_servers else SERVERS
    pids: dict[str, list[int]] = {}
    for server, names in servers.items():
        for name in names:
            found = subprocess.run(
                [str(REPO / "scripts/services"), "pid", name], capture_output=True, text=True
            )
            if found.returncode == 0:
                pids.setdefault(server, []).append(int(found.stdout))
    return pids


def tree_usage(pid: int, memory: bool = False) -> tuple[int, float]:
    """CPU-seconds (user + system) of a process and its live descendants, and with `memory`
    their proportional set size (slower: it reads every mapping): a page shared by n processes
    counts 1/n in each (PostgreSQL's backends share its buffers, a Celery worker's children
    their parent's pages), so the sum is what they use."""
    pss, cpu = 0, 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                if memory:
                    pss += p.memory_full_info().pss
                times = p.cpu_times()
                cpu += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return pss, cpu


def cpu_by_group(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(tree_usage(pid)[1] for pid in pids) for name, pids in groups.items()}


def events(text: str, kind: str) -> list[dict]:
    """The JSON events of `kind` among the lines of `text` (a process's report)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == kind:
                found.append(event)
    return found


ASSIGNED = re.compile(r"^(\S+ \S+) INFO bridge\.fanout: assigned \S", re.M)


def log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class MachineLoad:
    """What the machine was doing during a run, printed with its figures: the commit measured,
    the cores, and the share of their time that was stolen (a shared or virtual machine's
    neighbours; it moves figures between runs) or spent by anything, this run included."""

    def __init__(self) -> None:
        self.start = _cpu_times()

    def summary(self) -> str:
        spent = [now - then for now, then in zip(_cpu_times(), self.start, strict=True)]
        total = sum(spent[:8]) or 1  # user nice system idle iowait irq softirq steal
        steal, idle = spent[7], spent[3] + spent[4]
        return (
            f"measured: commit {commit()}; {os.cpu_count()} cores; during the run "
            f"{steal / total:.0%} of the CPU time stolen, {1 - (idle + steal) / total:.0%} busy"
        )


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(n) for n in stat.readline().split()[1:9]]


def commit() -> str:
    """The commit measured, `-dirty` when the work tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + ("-dirty" if dirty else "")
