"""Benchmark: the whole product for hours, for memory that stays flat and disk growth per record.

    .venv/bin/python -m bench.soak [--minutes 120] [--rate 300] [--sample-seconds 60]
                                   [--warm-up-minutes 15] [--kill-every MINUTES] [--out DIR]

On the stack that is up (`scripts/services up [--cluster]`), in the benchmarks' namespace
(bench/harness.py) and on topics of its own (created for the run, deleted after it, so that
`verify` compares the stores with this run's log only): a worker per queue (task events on, as
the Procfile's), the bridge, beat generating `--rate` records a second (a fifth customers, two
fifteenths books, the rest orders; books from Faker, offline) and Flower. Every
`--sample-seconds`: each process's and server's resident memory (its whole process tree) and
CPU time, the disk each server's data directory and the audit log take, Redis's data, and
how many records the topics hold. With `--kill-every`, every so many minutes one product
process, in turn, is killed (SIGKILL) and started again. At the end beat stops, the pipeline
drains, and `check` and `verify` compare every store with the log.

Prints each process's and server's resident memory after the warm-up and at the end (flat:
within 10%; Redis, which keeps its data in memory, also less its data), and each server's
bytes per record with the disk (and Redis the memory) a day at the rate needs. Writes
samples.csv and soak.png (memory and disk over time) into --out.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.harness import (
    CLUSTER_SERVERS,
    REPO,
    SERVERS,
    MachineLoad,
    Run,
    bench_settings,
    server_pids,
    tree_usage,
)
from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.generator import BOOK_IDS, CUSTOMER_IDS
from bookstore.kafka import admin_client, offsets
from bookstore.topic_config import ensure_topics
from tests.support import free_port, purge_task_queues, start_flower

FLAT = 0.10  # a process is flat when its memory at the end is within 10% of the warm-up's
KILLED_IN_TURN = ("bridge", "worker-postgres", "worker-mongo", "worker-redis", "worker-audit")


@dataclass
class Samples:
    """What was measured, one row per sample and thing: (seconds, kind, name, value, cpu)."""

    rows: list[tuple[float, str, str, float, float]] = field(default_factory=list)

    def add(self, at: float, kind: str, name: str, value: float, cpu: float = 0.0) -> None:
        self.rows.append((at, kind, name, value, cpu))

    def series(self, kind: str) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        for at, k, name, value, _ in self.rows:
            if k == kind:
                out.setdefault(name, []).append((at, value))
        return out

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("seconds", "kind", "name", "value", "cpu_seconds"))
            writer.writerows(self.rows)

    @classmethod
    def read(cls, path: Path) -> Samples:
        with path.open(newline="") as f:
            rows = [
                (
                    float(r["seconds"]),
                    r["kind"],
                    r["name"],
                    float(r["value"]),
                    float(r["cpu_seconds"]),
                )
                for r in csv.DictReader(f)
            ]
        return cls(rows)


def disk_bytes(path: Path) -> int:
    """What a file or directory occupies on disk (allocated blocks, as `du`)."""
    path = path.resolve()
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a segment removed meanwhile
                total += (Path(directory) / name).lstat().st_blocks * 512
    return total


def data_dirs(settings: Settings) -> dict[str, list[Path]]:
    """Each server's data directories (scripts/services keeps them in SERVICES_DIR/data)."""
    base = Path(os.environ.get("SERVICES_DIR") or REPO / ".services")
    if (base / "secure" / "up").exists():
        base = base / "secure"
    servers = CLUSTER_SERVERS if "," in settings.kafka_bootstrap_servers else SERVERS
    return {
        server: [base / "data" / name for name in names if (base / "data" / name).exists()]
        for server, names in servers.items()
    }


def records_held(settings: Settings) -> int:
    """Records the entity topics hold (their end offsets)."""
    _, end = offsets(settings, topics(settings).entities)
    return sum(end.values())


def sample(
    at: float, samples: Samples, run: Run, settings: Settings, dirs: dict[str, list[Path]]
) -> None:
    for name, proc in run.processes.named.items():
        rss, cpu = tree_usage(proc.pid, memory=True)
        samples.add(at, "memory", name, rss, cpu)
    for server, pids in server_pids(settings).items():
        parts = [tree_usage(pid, memory=True) for pid in pids]
        samples.add(at, "memory", server, sum(r for r, _ in parts), sum(c for _, c in parts))
    for server, paths in dirs.items():
        samples.add(at, "disk", server, sum(disk_bytes(p) for p in paths))
    audit = Path(run.processes.env.get("AUDIT_LOG_PATH") or os.environ["AUDIT_LOG_PATH"])
    samples.add(at, "disk", "audit log", disk_bytes(audit) if audit.exists() else 0)
    samples.add(at, "records", "topics", records_held(settings))
    client = redis.Redis.from_url(run.processes.env["REDIS_URL"])
    # what Redis allocated since it started: the records and the index of their keys
    # (used_memory_dataset leaves the index out, which grows with every key too)
    info = client.info("memory")
    samples.add(at, "data", "redis", info["used_memory"] - info["used_memory_startup"])
    client.close()


def operator(run: Run, *args: str) -> subprocess.CompletedProcess:
    """`python -m bookstore ARGS` in the run's namespace."""
    return subprocess.run(
        [sys.executable, "-m", "bookstore", *args],
        cwd=REPO,
        env={**os.environ, **run.processes.env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def drain(run: Run, timeout: float = 900) -> None:
    """Until every record is committed by the bridge and every task queue is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = operator(run, "stats", "--json")
        if stats.returncode == 0:
            now = json.loads(stats.stdout)
            lag = sum(p["lag"] for p in now["lag"])
            waiting = sum(q["messages"] for name, q in now["queues"].items() if name != "parked")
            if lag == 0 and waiting == 0:
                return
        time.sleep(5)
    raise RuntimeError("the pipeline did not drain")


def start_product(run: Run, settings: Settings, rate: float) -> dict[str, Callable[[], object]]:
    """Every process of the product; how to start each again."""
    purge_task_queues(settings)
    ensure_topics(settings)
    # the generator's registry of ids, which the stores' reset leaves: a fresh run's orders
    # reference the customers and books it made itself
    registry = redis.Redis.from_url(run.processes.env["REDIS_URL"])
    for key in (CUSTOMER_IDS, BOOK_IDS):
        registry.delete(key)
    workers = int(os.environ.get("WORKER_CONCURRENCY") or 2)
    starters: dict[str, Callable[[], object]] = {}
    for queue in settings.entities.celery_queues:
        starters[f"worker-{queue}"] = lambda q=queue: run.processes.worker(
            q, "-E", concurrency=workers
        )
    starters["bridge"] = run.start_bridge
    customers, books = round(rate / 5), round(rate * 2 / 15)
    generation = {
        "GENERATE_INTERVAL_SECONDS": "1",
        "GENERATE_CUSTOMERS_PER_TICK": str(customers),
        "GENERATE_BOOKS_PER_TICK": str(books),
        "GENERATE_ORDERS_PER_TICK": str(max(0, round(rate) - customers - books)),
    }
    schedule = f"--schedule={run.dir / 'beat-schedule'}"
    beat = ("-m", "celery", "-A", "tasks", "beat", "--loglevel=INFO", schedule)
    starters["beat"] = lambda: run.processes.start("beat", *beat, env=generation)
    port = free_port()
    starters["flower"] = lambda: start_flower(
        run.processes, port, {"FLOWER_BASIC_AUTH": "soak:bench-only"}
    )
    for start in starters.values():
        start()
    return starters


def trend(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The least-squares line through the points: (slope, value at the first point). A sawtooth
    (a log that rolls over, a file rewritten) has no trend however far apart its ends are."""
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return 0.0, points[0][1] if points else 0.0
    slope, intercept = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return slope, intercept + slope * points[0][0]


def less_data(samples: Samples) -> dict[str, list[tuple[float, float]]]:
    """A store that holds its data in memory (Redis) grows with it by design: its memory less
    its data is what has to stay flat."""
    memory = samples.series("memory")
    return {
        f"{name} less its data": [(t, dict(memory[name])[t] - v) for t, v in points]
        for name, points in samples.series("data").items()
        if name in memory
    }


def summary(samples: Samples, warm_up: float, rate: float) -> list[str]:
    """Memory after the warm-up: the trend's value at its start and end, flat when they are
    within 10%; disk and a store's in-memory data: the bytes each record adds (their trend
    against the records held)."""
    lines = [
        f"{'memory (MB)':<22}{'after warm-up':>14}{'end':>10}{'trend':>9}{'max':>8}{'CPU s':>9}"
    ]
    cpu = {name: c for _, kind, name, _, c in samples.rows if kind == "memory"}
    memory = {**samples.series("memory"), **less_data(samples)}
    for name, points in sorted(memory.items()):
        after = [(t, v) for t, v in points if t >= warm_up] or points[-1:]
        slope, first = trend(after)
        last = first + slope * (after[-1][0] - after[0][0])
        change = last / first - 1 if first else 0.0
        verdict = "flat" if abs(change) <= FLAT else "GROWS" if change > 0 else "shrinks"
        lines.append(
            f"{name:<22}{first / 1e6:>14.0f}{last / 1e6:>10.0f}{change:>+9.0%}"
            f"{max(v for _, v in after) / 1e6:>8.0f}{cpu.get(name, 0):>9.0f}  {verdict}"
        )
    held = dict(samples.series("records")["topics"])
    lines.append(f"\n{'disk':<22}{'bytes/record':>14}{'GB a day at':>14}")
    lines.append(f"{'':<22}{'':>14}{rate:>9,.0f} rec/s")
    grown = {
        **samples.series("disk"),
        **{f"{n} data (memory)": p for n, p in samples.series("data").items()},
    }
    for name, points in sorted(grown.items()):
        per_record, _ = trend([(held[t], v) for t, v in points if t in held])
        lines.append(f"{name:<22}{per_record:>14,.0f}{per_record * rate * 86400 / 1e9:>14.1f}")
    return lines


def plot(samples: Samples, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, disk) = plt.subplots(1, 2, figsize=(13, 5))
    for axes, kind, title in ((memory, "memory", "resident memory"), (disk, "disk", "disk")):
        for name, points in sorted(samples.series(kind).items()):
            axes.plot([t / 60 for t, _ in points], [v / 1e6 for _, v in points], label=name)
        axes.set(xlabel="minutes", ylabel="MB", title=title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--rate", type=float, default=300, help="records generated a second")
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument("--warm-up-minutes", type=float, default=15)
    parser.add_argument("--kill-every", type=float, default=0, help="minutes between kills")
    parser.add_argument("--out", type=Path, default=None, help="samples.csv, soak.png")
    parser.add_argument("--report", type=Path, help="an earlier run's samples.csv: summarise it")
    args = parser.parse_args()
    if args.report:
        print("\n".join(summary(Samples.read(args.report), args.warm_up_minutes * 60, args.rate)))
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    machine = MachineLoad()
    os.environ["KAFKA_TOPIC_PREFIX"] = f"soak-{uuid.uuid4().hex[:8]}."
    settings = bench_settings()
    os.environ["GOOGLE_BOOKS_BASE_URL"] = "http://127.0.0.1:9/books/v1"  # offline: Faker's
    run = Run(settings, {"GOOGLE_BOOKS_BASE_URL": os.environ["GOOGLE_BOOKS_BASE_URL"]})
    samples = Samples()
    dirs = data_dirs(settings)
    try:
        starters = start_product(run, settings, args.rate)
        began = time.monotonic()
        end = began + args.minutes * 60
        victims = itertools.cycle(KILLED_IN_TURN)
        next_kill = began + args.kill_every * 60 if args.kill_every else float("inf")
        while (now := time.monotonic()) < end:
            sample(now - began, samples, run, settings, dirs)
            for name, proc in run.processes.named.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited; its log: {run.dir / (name + '.log')}")
            if now >= next_kill:
                victim = next(victims)
                run.processes.stop(run.processes.named[victim], signal.SIGKILL)
                starters[victim]()
                print(f"  {(now - began) / 60:.0f} min: killed {victim}, started again", flush=True)
                next_kill += args.kill_every * 60
            time.sleep(max(0.0, min(args.sample_seconds, end - time.monotonic())))
        sample(time.monotonic() - began, samples, run, settings, dirs)
        run.processes.stop(run.processes.named["beat"])
        drain(run)
        check, verify = operator(run, "check"), operator(run, "verify")
    finally:
        run.stop()
        admin = admin_client(settings)
        admin.delete_topics(list(topics(settings).all))
        admin.close()
    samples.write(out / "samples.csv")
    plot(samples, out / "soak.png")
    print(
        f"\n{args.minutes:.0f} min at {args.rate:,.0f} records/s"
        f"{f', a process killed every {args.kill_every:g} min' if args.kill_every else ''};"
        f" warm-up {args.warm_up_minutes:g} min"
    )
    print("\n".join(summary(samples, args.warm_up_minutes * 60, args.rate)))
    print(f"\ncheck: exit {check.returncode}; verify: exit {verify.returncode}")
    for result in (check, verify):
        if result.returncode:
            print(result.stdout[-2000:] + result.stderr[-2000:])
    print(f"samples: {out / 'samples.csv'}; picture: {out / 'soak.png'}\n{machine.summary()}")
    return 1 if check.returncode or verify.returncode else 0


if __name__ == "__main__":
    sys.exit(main())
