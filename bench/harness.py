"""What the benchmarks share: the workload, a run's own stores and consumer group, the processes
it starts, and the CPU they and the servers spend (psutil).

Every run has stores of its own (a PostgreSQL and a MongoDB database, Redis database 4, an audit
file), topics of its own (KAFKA_TOPIC_PREFIX `bench.` unless set) and RabbitMQ's vhost
`bookstore_bench`, whose task queues it purges before it starts: a stack running alongside on the
same servers keeps its data and its tasks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import psycopg2
import pymongo
import redis
from kafka import KafkaProducer
from kombu import Connection

from bookstore.config import Settings, load_settings
from bookstore.entities import BOOKS, CUSTOMERS, ORDERS, EntityTable
from bookstore.kafka import client_options
from tests.support import on_vhost

REPO = Path(__file__).resolve().parent.parent

# Each server's processes, as `scripts/services` names them: on the single stack, or on the
# three-node one (when KAFKA_BOOTSTRAP_SERVERS names several brokers).
SERVERS = {name: (name,) for name in ("kafka", "postgres", "mongo", "redis", "rabbitmq")}
CLUSTER_SERVERS = {
    **SERVERS,
    "kafka": ("kafka-1", "kafka-2", "kafka-3"),
    "rabbitmq": ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3"),
}
REDIS_DB = 4  # the benchmark's own; emptied before each run
VHOST = "bookstore_bench"  # created by scripts/services


def bench_settings() -> Settings:
    """The settings of a benchmark and of every process it starts: topics of its own and the
    benchmarks' vhost on the broker(s) CELERY_BROKER_URL names."""
    os.environ.setdefault("KAFKA_TOPIC_PREFIX", "bench.")
    broker = (
        os.environ.get("CELERY_BROKER_URL") or Settings.model_fields["celery_broker_url"].default
    )
    os.environ["CELERY_BROKER_URL"] = on_vhost(broker, VHOST)
    return load_settings(stores=True)


TABLE = EntityTable()  # the built-in entities: those the workload generates
BENCH_VHOST_QUEUES = TABLE.celery_queues


# --- the workload -------------------------------------------------------------------------------


def records(n: int, tag: str) -> list[tuple[str, bytes, bytes]]:
    """n valid (entity, key, value) records in the original format, a third per entity; orders
    reference the others."""
    third = n // 3
    out: list[tuple[str, bytes, bytes]] = []
    customers = [str(uuid.uuid4()) for _ in range(third)]
    books = [f"{tag}-vol{i}" for i in range(third)]
    for i, cid in enumerate(customers):
        value = {"id": cid, "name": f"Cliente {i} ção", "email": f"c{i}.{tag}@example.com"}
        out.append((CUSTOMERS, cid.encode(), json.dumps(value).encode()))
    for i, bid in enumerate(books):
        value = {"id": bid, "isbn": f"978{i:010d}", "title": f"Livro {i}", "authors": [f"A {i}"]}
        out.append((BOOKS, bid.encode(), json.dumps({**value, "publishedDate": "2004"}).encode()))
    for i in range(n - 2 * third):
        oid = str(uuid.uuid4())
        value = {
            "id": oid,
            "customer_id": customers[i % third],
            "book_id": books[i % third],
            "quantity": 1 + i % 5,
            "timestamp": 1_700_000_000 + i,
        }
        out.append((ORDERS, oid.encode(), json.dumps(value).encode()))
    return out


def producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(**client_options(settings), acks="all", linger_ms=5)


# --- a run's own stores --------------------------------------------------------------------------


@dataclass
class Namespace:
    """Empty stores, a consumer group, an audit file and a log directory for one run."""

    settings: Settings
    name: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:8]}")
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))

    def __post_init__(self) -> None:
        base = self.settings
        admin = psycopg2.connect(base.store("postgres").dsn.rsplit("/", 1)[0] + "/bookstore")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"')
        admin.close()
        redis.Redis.from_url(self.redis_url).flushdb()

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "POSTGRES_DSN": self.settings.store("postgres").dsn.rsplit("/", 1)[0] + f"/{self.name}",
            "MONGO_DB": self.name,
            "REDIS_URL": self.redis_url,
            "AUDIT_LOG_PATH": str(self.dir / "messages.log"),
            "BRIDGE_GROUP_ID": self.name,
            "GO_FILE": str(self.dir / "go"),
            # the stack measured: the single one, or the three-node one (bench/cluster.py)
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "CELERY_BROKER_URL": self.settings.celery_broker_url,
        }

    def drop(self) -> None:
        dsn = self.settings.store("postgres").dsn
        admin = psycopg2.connect(dsn.rsplit("/", 1)[0] + "/bookstore")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()
        pymongo.MongoClient(self.settings.store("mongo").uri).drop_database(self.name)


# --- processes and their CPU ---------------------------------------------------------------------


class Processes:
    def __init__(self, log_dir: Path, env: dict[str, str]):
        self.log_dir, self.env = log_dir, {**os.environ, **env}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        return proc

    def worker(self, queue: str) -> None:
        """A worker on the pool WORKER_POOL names (prefork by default, as the Procfile's; e.g.
        `--config NAME:WORKER_POOL=solo` compares another) with WORKER_CONCURRENCY processes
        (the Procfile's variable; 1 by default here)."""
        self.start(
            f"worker-{queue}",
            *("-m", "celery", "-A", "tasks", "worker", "-Q", queue, "-n", f"bench-{queue}@%h"),
            f"--pool={self.env.get('WORKER_POOL') or 'prefork'}",
            f"--concurrency={self.env.get('WORKER_CONCURRENCY') or 1}",
            *("--loglevel=INFO", "--without-mingle", "--without-gossip"),
        )

    def groups(self) -> dict[str, list[int]]:
        """Each process started, by name (its CPU counts its children: a worker's pool)."""
        return {name: [proc.pid] for name, proc in self.procs.items()}

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


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


def tree_cpu(pid: int) -> float:
    """CPU-seconds (user + system) of a process and its live descendants."""
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def cpu_by_group(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(tree_cpu(pid) for pid in pids) for name, pids in groups.items()}


def events(text: str, kind: str) -> list[float]:
    return [e["at"] for e in map(json.loads, text.splitlines()) if e.get("event") == kind]


RESULT = re.compile(r"^\[(\S+ \S+?): INFO/\w+(?:-\d+)?\] Task \S+ succeeded in \S+: (.*)$", re.M)
ASSIGNED = re.compile(r"^(\S+ \S+) INFO bridge\.fanout: assigned \S", re.M)


def log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def purge_task_queues(settings: Settings) -> None:
    """Tasks left by an interrupted run must not count in this one."""
    from tasks import app
    from tasks.queues import declare

    declare(app, settings.celery_broker_url)
    with Connection(settings.celery_broker_url) as conn:
        for queue in BENCH_VHOST_QUEUES:
            conn.default_channel.queue_purge(queue)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
