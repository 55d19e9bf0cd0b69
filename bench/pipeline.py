"""Benchmark: the pipeline against a naive per-record sink (the floor a user comes from) and a
parallel direct sink (the ceiling), on one backlog, the same servers, in the same run.

    .venv/bin/python -m bench.pipeline [--records 30000] [--repeat 3] [--batch-size 500]
                                       [--naive-records 2000] [--latency 0.1,0.5] [--seconds 12]

Throughput: a backlog of valid records (a third per topic) is produced once; every run drains it
into empty stores of its own with consumer groups of its own; runs are interleaved (naive,
direct, pipeline, naive, ...) and reported as median and range. The clock starts when the
consumers hold their partitions and stops when the last store and the audit log are complete, as
the processes report it themselves (the workers' task results, the sinks' own counts): nothing
polls the measured servers meanwhile. CPU-seconds per record are counted for every process and
every server (psutil): stable on a noisy machine, where msg/s is not.

Latency: records produced at a fixed fraction of the pipeline's measured maximum; produce ->
stored for a sample of them (looked up by key in their store every 10 ms), per peer.

The benchmark has topics of its own (KAFKA_TOPIC_PREFIX `bench.` unless set): a running stack's
bridge never sees them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import psycopg2
import pymongo
import redis
from kafka import KafkaProducer
from kombu import Connection

from bookstore import entities
from bookstore.config import Settings, load_settings
from bookstore.entities import BOOKS, CELERY_QUEUES, CUSTOMERS, ORDERS, STORE_QUEUE, topics
from bookstore.kafka import client_options, commit_group_offsets, offsets
from bookstore.topic_config import ensure_topics

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
BENCH_VHOST_QUEUES = (*CELERY_QUEUES,)


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
        admin = psycopg2.connect(base.postgres_dsn.rsplit("/", 1)[0] + "/bookstore")
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
            "POSTGRES_DSN": self.settings.postgres_dsn.rsplit("/", 1)[0] + f"/{self.name}",
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
        admin = psycopg2.connect(self.settings.postgres_dsn.rsplit("/", 1)[0] + "/bookstore")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        admin.close()
        pymongo.MongoClient(self.settings.mongo_uri).drop_database(self.name)


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
        self.start(
            f"worker-{queue}",
            *("-m", "celery", "-A", "tasks", "worker", "-Q", queue, "-n", f"bench-{queue}@%h"),
            *("--concurrency=1", "--loglevel=INFO", "--without-mingle", "--without-gossip"),
        )

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


@dataclass
class Run:
    peer: str
    records: int
    seconds: float
    cpu: dict[str, float]  # group -> CPU-seconds during the run
    bridge_rss: float = 0.0  # MB, the most the bridge held (pipeline runs)
    started: float = 0.0  # epoch seconds
    tenths: list[float] = field(default_factory=list)  # msg/s over each tenth of the backlog

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us_per_record(self) -> float:
        return sum(self.cpu.values()) / self.records * 1e6


def measured(
    peer: str,
    n: int,
    groups: Callable[[], dict[str, list[int]]],
    start: Callable[[], float],
    finished: Callable[[], float | None],
) -> Run:
    """`start()` the clock (it returns the epoch time the consumers held their partitions),
    sample CPU, wait until `finished()` gives the epoch time of completion, sample CPU again.
    (Sampling after the start leaves the bridge's start-up out of its CPU.)"""
    t0 = start()
    before = cpu_by_group(groups())
    rss = 0.0
    while (t1 := finished()) is None:
        for pid in groups().get("bridge", []):
            with contextlib.suppress(psutil.NoSuchProcess):
                rss = max(rss, psutil.Process(pid).memory_info().rss / 2**20)
        time.sleep(0.2)
    after = cpu_by_group(groups())
    return Run(peer, n, t1 - t0, {k: after[k] - before.get(k, 0.0) for k in after}, rss, t0)


def events(text: str, kind: str) -> list[float]:
    return [e["at"] for e in map(json.loads, text.splitlines()) if e.get("event") == kind]


# --- the peers -----------------------------------------------------------------------------------


def run_sinks(settings: Settings, start: dict, roles: dict[str, int], label: str) -> Run:
    """Naive ({"naive": n}) or parallel direct ({role: records}) sink processes."""
    ns = Namespace(settings)
    for role in roles:
        commit_group_offsets(settings, f"{ns.name}-{role}", start)
    procs = Processes(ns.dir, ns.env)
    servers = server_pids(settings)
    for role, expect in roles.items():
        procs.env["EXPECT"] = str(expect)
        args = ["naive"] if role == "naive" else ["direct", role]
        procs.start(role, str(REPO / "bench/sinks.py"), *args)
    try:
        while not all(events(procs.log(r), "ready") for r in roles):
            time.sleep(0.05)

        def go() -> float:
            (ns.dir / "go").touch()
            return time.time()

        def finished() -> float | None:
            done = [events(procs.log(r), "done") for r in roles]
            return max(d[0] for d in done) if all(done) else None

        def groups() -> dict[str, list[int]]:
            return {"sinks": [p.pid for p in procs.procs.values()], **servers}

        return measured(label, sum(roles.values()), groups, go, finished)
    finally:
        procs.stop_all()
        ns.drop()


_RESULT = re.compile(r"^\[(\S+ \S+?): INFO/\w+(?:-\d+)?\] Task \S+ succeeded in \S+: (.*)$", re.M)
_ASSIGNED = re.compile(r"^(\S+ \S+) INFO bridge\.fanout: assigned \S", re.M)


def _log_time(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run_pipeline(settings: Settings, start: dict, per_topic: dict[str, int], batch: int) -> Run:
    ns = Namespace(settings)
    commit_group_offsets(settings, ns.name, start)
    purge_task_queues(settings)
    procs = Processes(ns.dir, {**ns.env, "BRIDGE_BATCH_SIZE": str(batch)})
    servers = server_pids(settings)
    queues = {**{q: t for t, q in STORE_QUEUE.items()}, "audit": None}
    for queue in queues:
        procs.worker(queue)
    spies: list[subprocess.Popen] = []
    try:
        while not all(" ready." in procs.log(f"worker-{q}") for q in queues):
            time.sleep(0.1)

        def start_bridge() -> float:
            procs.start("bridge", "-m", "bridge")
            while not (m := _ASSIGNED.search(procs.log("bridge"))):
                time.sleep(0.01)
            if PROFILE_DIR:
                spies.extend(profile(procs))
            return _log_time(m.group(1))

        def progress(queue: str) -> list[tuple[float, int]]:
            """(time, records stored so far) after each task of `queue`, from its results."""
            stored, steps = 0, []
            for stamp, result in _RESULT.findall(procs.log(f"worker-{queue}")):
                m = re.search(r"'stored': (\d+)", result)
                stored += int(m.group(1)) if m else int(result)
                steps.append((_log_time(stamp), stored))
            return steps

        def target(topic: str | None) -> int:
            return per_topic[topic] if topic else sum(per_topic.values())

        def finished() -> float | None:
            """When the last task that completed the set ended, from the workers' task results."""
            last = 0.0
            for queue, topic in queues.items():
                steps = progress(queue)
                if not steps or steps[-1][1] < target(topic):
                    return None
                last = max(last, steps[-1][0])
            return last

        def tenths(t0: float) -> list[float]:
            """msg/s over each tenth of the backlog, by records stored in all three stores."""
            events = []  # (time, records a task stored)
            for q, topic in queues.items():
                previous = 0
                for t, n in progress(q) if topic else []:
                    events.append((t, n - previous))
                    previous = n
            events.sort()
            total, ends, stored = sum(per_topic.values()), [t0], 0
            for t, n in events:
                stored += n
                while len(ends) <= 10 and stored >= total * len(ends) / 10:
                    ends.append(t)
            share = total / 10
            return [share / max(b - a, 1e-3) for a, b in zip(ends, ends[1:], strict=False)]

        def groups() -> dict[str, list[int]]:
            workers = [p.pid for n, p in procs.procs.items() if n.startswith("worker-")]
            bridge = [procs.procs["bridge"].pid] if "bridge" in procs.procs else []
            return {"bridge": bridge, "workers": workers, **servers}

        run = measured("pipeline", sum(per_topic.values()), groups, start_bridge, finished)
        run.tenths = tenths(run.started)
        return run
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            spy.wait()
        procs.stop_all()
        ns.drop()
        if spies:
            print_profiles()


PROFILE_DIR: Path | None = None


def profile(procs: Processes) -> list[subprocess.Popen]:
    """py-spy (dev requirement) samples the bridge and each worker's pool process."""
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    targets = {"bridge": procs.procs["bridge"].pid}
    for name, proc in procs.procs.items():
        if name.startswith("worker-"):
            children = psutil.Process(proc.pid).children()
            targets[name] = children[0].pid if children else proc.pid
    return [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(PROFILE_DIR / f"{name}.txt"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in targets.items()
    ]


def print_profiles(top: int = 8) -> None:
    """The functions each process spent its samples in (self time), largest first."""
    for path in sorted(PROFILE_DIR.glob("*.txt")):
        own: dict[str, int] = {}
        total = 0
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frame = stack.rsplit(";", 1)[-1]
            own[frame] = own.get(frame, 0) + int(count)
            total += int(count)
        print(f"  profile {path.stem} ({total} samples):")
        for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {n / total:6.1%}  {frame[:110]}")


def purge_task_queues(settings: Settings) -> None:
    """Tasks left by an interrupted run must not count in this one."""
    from tasks import app
    from tasks.queues import declare

    declare(app, settings.celery_broker_url)
    with Connection(settings.celery_broker_url) as conn:
        for queue in BENCH_VHOST_QUEUES:
            conn.default_channel.queue_purge(queue)


# --- latency -------------------------------------------------------------------------------------


class Probe:
    """Looks a sample of sent records up by key in their stores every 10 ms; the first time each
    is found, minus its send time, is its latency."""

    def __init__(self, ns: Namespace):
        self.pg = psycopg2.connect(ns.env["POSTGRES_DSN"])
        self.pg.autocommit = True
        self.mongo = pymongo.MongoClient(ns.settings.mongo_uri)[ns.name].books
        self.redis = redis.Redis.from_url(ns.redis_url)
        self.pending: dict[tuple[str, str], float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stopping = False

    def sent(self, topic: str, key: str, at: float) -> None:
        with self.lock:
            self.pending[(topic, key)] = at

    def run(self) -> None:
        while not self.stopping:
            with self.lock:
                waiting = dict(self.pending)
            found = self._found(waiting)
            now = time.time()
            with self.lock:
                for k in found:
                    self.latencies.append(now - self.pending.pop(k))
            time.sleep(0.01)

    def _found(self, waiting: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
        found = []
        customers = [k for t, k in waiting if t == CUSTOMERS]
        if customers:
            with self.pg.cursor() as cur:
                try:
                    cur.execute(
                        "SELECT id::text FROM customers WHERE id = ANY(%s::uuid[])", (customers,)
                    )
                    found += [(CUSTOMERS, r[0]) for r in cur.fetchall()]
                except psycopg2.errors.UndefinedTable:
                    pass
        for t, k in waiting:
            if t == BOOKS and self.mongo.find_one({"_id": k}, {"_id": 1}):
                found.append((t, k))
        orders = [k for t, k in waiting if t == ORDERS]
        if orders:
            pipe = self.redis.pipeline(transaction=False)
            for k in orders:
                pipe.exists(f"order:{k}")
            found += [(ORDERS, k) for k, hit in zip(orders, pipe.execute(), strict=True) if hit]
        return found


def latency(settings: Settings, peer: str, rate: float, seconds: float, batch: int) -> list[float]:
    """Run `peer` on fresh stores; produce `rate` records/s for `seconds`; sampled latencies."""
    ns = Namespace(settings)
    names = topics(settings)
    _, start = offsets(settings, names.entities)
    env = {**ns.env, "BRIDGE_BATCH_SIZE": str(batch)}
    procs = Processes(ns.dir, env)
    n = int(rate * seconds)
    if peer == "pipeline":
        commit_group_offsets(settings, ns.name, start)
        purge_task_queues(settings)
        for queue in (*STORE_QUEUE.values(), "audit"):
            procs.worker(queue)
        while not all(" ready." in procs.log(f"worker-{q}") for q in (*STORE_QUEUE.values(),)):
            time.sleep(0.1)
        procs.start("bridge", "-m", "bridge")
        while not _ASSIGNED.search(procs.log("bridge")):
            time.sleep(0.05)
    else:
        for role in (*entities.NAMES, "audit"):
            commit_group_offsets(settings, f"{ns.name}-{role}", start)
            procs.env["EXPECT"] = str(n // 3 if role != "audit" else n)
            procs.start(role, str(REPO / "bench/sinks.py"), "direct", role)
        while not all(events(procs.log(r), "ready") for r in (*entities.NAMES, "audit")):
            time.sleep(0.05)
        (ns.dir / "go").touch()
    probe = Probe(ns)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    kafka = producer(settings)
    workload = records(n, uuid.uuid4().hex[:6])
    order = [workload[i // 3 + (i % 3) * (n // 3)] for i in range(3 * (n // 3))]  # interleaved
    began = time.time()
    try:
        for i, (entity, key, value) in enumerate(order):
            due = began + i / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            kafka.send(names.of(entity), key=key, value=value)
            if i % 10 == 0:
                probe.sent(entity, key.decode(), time.time())
        kafka.flush()
        deadline = time.time() + 60
        while probe.pending and time.time() < deadline:
            time.sleep(0.1)
    finally:
        probe.stopping = True
        thread.join()
        kafka.close()
        procs.stop_all()
        ns.drop()
    return probe.latencies


# --- report --------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8,.0f}  ({min(values):,.0f}-{max(values):,.0f})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


NAMES = {"naive": "naive per-record", "direct": "parallel direct", "pipeline": "pipeline"}


def report(runs: dict[str, list[Run]]) -> None:
    """Throughput, CPU per record and the pipeline's ratios, for the runs of one batch size."""
    print(f"\n{'peer':<22}{'msg/s median (range)':>28}{'CPU µs/record':>16}")
    for peer, rs in runs.items():
        cpu = statistics.median(r.cpu_us_per_record for r in rs)
        print(f"{NAMES[peer]:<22}{spread([r.rate for r in rs]):>28}{cpu:>16,.0f}")
    if "pipeline" in runs:
        rss = max(r.bridge_rss for r in runs["pipeline"])
        print(f"bridge resident memory: at most {rss:,.0f} MB")
        tenths = " ".join(f"{r:,.0f}" for r in runs["pipeline"][0].tenths)
        print(f"pipeline msg/s per tenth of the backlog (first run): {tenths}")
        pipeline = statistics.median(r.rate for r in runs["pipeline"])
        for peer in ("naive", "direct"):
            if peer in runs:
                ratio = pipeline / statistics.median(r.rate for r in runs[peer])
                print(f"pipeline / {NAMES[peer]}: {ratio:.2f}")
    print("CPU µs per record by process (median):")
    for peer, rs in runs.items():
        parts = {
            g: statistics.median(r.cpu.get(g, 0) / r.records * 1e6 for r in rs) for g in rs[0].cpu
        }
        print(f"  {NAMES[peer]:<20}" + "  ".join(f"{g} {us:,.0f}" for g, us in parts.items()))


def plot(path: Path, by_batch: dict[int, dict[str, list[Run]]], latencies: list[tuple]) -> None:
    """A PNG: msg/s per batch size (median, range as error bars), and latency percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    sizes = sorted(by_batch)
    for peer in ("direct", "pipeline"):
        rates = [[r.rate for r in by_batch[b].get(peer, [])] for b in sizes]
        if all(rates):
            mid = [statistics.median(r) for r in rates]
            err = [
                [m - min(r) for m, r in zip(mid, rates, strict=True)],
                [max(r) - m for m, r in zip(mid, rates, strict=True)],
            ]
            left.errorbar(sizes, mid, yerr=err, marker="o", capsize=4, label=NAMES[peer])
    left.set(xscale="log", xlabel="records per task (BRIDGE_BATCH_SIZE)", ylabel="msg/s")
    left.set_title("Draining a backlog")
    left.set_xticks(sizes, [str(b) for b in sizes])
    left.legend()
    left.grid(alpha=0.3)
    labels = [f"{load}\n{NAMES[peer]}" for load, peer, *_ in latencies]
    for k, (q, name) in enumerate(((2, "p50"), (3, "p90"), (4, "p99"))):
        xs = [i + (k - 1) * 0.27 for i in range(len(latencies))]
        right.bar(xs, [row[q] for row in latencies], width=0.27, label=name)
    right.set_xticks(range(len(latencies)), labels, fontsize=8)
    right.set(ylabel="ms, produce -> stored", yscale="log")
    right.set_title("Latency at a fraction of the pipeline's maximum")
    right.legend()
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\npicture: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30000, help="backlog size")
    parser.add_argument(
        "--naive-records", type=int, default=2000, help="how many the naive sink drains"
    )
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per peer")
    parser.add_argument(
        "--batch-sizes", default="500", help="BRIDGE_BATCH_SIZE values to run, e.g. 50,500,2000"
    )
    parser.add_argument("--latency", default="0.1,0.5", help="fractions of the maximum, or ''")
    parser.add_argument("--seconds", type=float, default=12, help="per latency measurement")
    parser.add_argument("--peers", default="naive,direct,pipeline", help="which peers to run")
    parser.add_argument("--plot", metavar="PNG", help="also draw the figures (matplotlib)")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the bridge and the workers of the pipeline runs"
    )
    args = parser.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = Path(args.profile) if args.profile else None
    os.environ.setdefault("KAFKA_TOPIC_PREFIX", "bench.")  # every process it starts too
    settings = load_settings()
    ensure_topics(settings)
    names = topics(settings)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    _, start = offsets(settings, names.entities)
    workload = records(args.records, uuid.uuid4().hex[:6])
    kafka = producer(settings)
    for entity, key, value in workload:
        kafka.send(names.of(entity), key=key, value=value)
    kafka.flush()
    kafka.close()
    per_topic = {e: sum(1 for w in workload if w[0] == e) for e in entities.NAMES}
    roles = {**per_topic, "audit": len(workload)}
    print(f"backlog: {len(workload):,} records; {args.repeat} interleaved runs per peer")

    by_batch: dict[int, dict[str, list[Run]]] = {}
    for batch in sizes:
        os.environ["BRIDGE_BATCH_SIZE"] = str(batch)  # the direct sinks' batches too
        peers = {
            "naive": lambda: run_sinks(settings, start, {"naive": args.naive_records}, "naive"),
            "direct": lambda: run_sinks(settings, start, roles, "direct"),
            "pipeline": lambda b=batch: run_pipeline(settings, start, per_topic, b),
        }
        chosen = [p for p in args.peers.split(",") if p != "naive" or batch == sizes[0]]
        runs: dict[str, list[Run]] = {p: [] for p in chosen}
        for i in range(args.repeat):
            for peer, rs in runs.items():
                rs.append(peers[peer]())
            print(
                f"  batch {batch}, run {i + 1}: "
                + ", ".join(f"{p} {r[-1].rate:,.0f}/s" for p, r in runs.items())
            )
        by_batch[batch] = runs
        print(f"\n== BRIDGE_BATCH_SIZE={batch}")
        report(runs)

    default = by_batch.get(500) or by_batch[sizes[0]]
    latencies = []
    fractions = [float(f) for f in args.latency.split(",") if f]
    if fractions and "pipeline" in default:
        os.environ["BRIDGE_BATCH_SIZE"] = str(500 if 500 in by_batch else sizes[0])
        maximum = statistics.median(r.rate for r in default["pipeline"])
        print(f"\nlatency produce -> stored, ms (at a fraction of {maximum:,.0f} msg/s):")
        print(f"{'load':<16}{'peer':<18}{'p50':>8}{'p90':>8}{'p99':>8}{'samples':>9}")
        for fraction in fractions:
            rate = maximum * fraction
            for peer in ("direct", "pipeline"):
                batch = int(os.environ["BRIDGE_BATCH_SIZE"])
                ms = [1000 * x for x in latency(settings, peer, rate, args.seconds, batch)]
                row = (
                    f"{fraction:.0%} ({rate:,.0f}/s)",
                    peer,
                    percentile(ms, 0.5),
                    percentile(ms, 0.9),
                    percentile(ms, 0.99),
                    len(ms),
                )
                latencies.append(row)
                print(
                    f"{row[0]:<16}{NAMES[peer]:<18}{row[2]:8.0f}{row[3]:8.0f}{row[4]:8.0f}{row[5]:9}"
                )
    if args.plot:
        plot(Path(args.plot), by_batch, latencies)


if __name__ == "__main__":
    main()
