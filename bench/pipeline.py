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
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.harness import (
    REPO,
    MachineLoad,
    Run,
    bench_settings,
    cpu_by_group,
    events,
    per_store,
    percentile,
    producer,
    records,
    server_pids,
)
from bench.steady import steady
from bookstore.config import Settings
from bookstore.entities import AUDIT_QUEUE as AUDIT
from bookstore.entities import topics
from bookstore.kafka import commit_group_offsets, offsets
from bookstore.topic_config import ensure_topics


@dataclass
class Measured:
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
) -> Measured:
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
    return Measured(peer, n, t1 - t0, {k: after[k] - before.get(k, 0.0) for k in after}, rss, t0)


# --- the peers -----------------------------------------------------------------------------------


def run_sinks(settings: Settings, start: dict, roles: dict[str, int], label: str) -> Measured:
    """Naive ({"naive": n}) or parallel direct ({store: records}) sink processes."""
    run = Run(settings)
    for role in roles:
        commit_group_offsets(settings, f"{run.group}-{role}", start)
    servers = server_pids(settings)
    for role, expect in roles.items():
        args = ["naive"] if role == "naive" else ["direct", role]
        run.processes.start(role, str(REPO / "bench/sinks.py"), *args, env={"EXPECT": str(expect)})
    try:
        while not all(events(run.processes.log(r), "ready") for r in roles):
            time.sleep(0.05)

        def go() -> float:
            (run.dir / "go").touch()
            return time.time()

        def finished() -> float | None:
            done = [events(run.processes.log(r), "done") for r in roles]
            return max(d[0]["at"] for d in done) if all(done) else None

        def groups() -> dict[str, list[int]]:
            return {"sinks": run.pids(), **servers}

        return measured(label, sum(roles.values()), groups, go, finished)
    finally:
        run.stop()


class PipelineRun:
    """The pipeline draining the backlog in a run of its own: a worker per queue, then the bridge.
    The clock runs from the bridge holding its partitions (its report) to the last task that
    completed every store, as the workers report it (bench/probe.py)."""

    def __init__(self, settings: Settings, start: dict, expected: dict[str, int], batch: int):
        self.run = Run(settings, {"BRIDGE_BATCH_SIZE": str(batch)})
        commit_group_offsets(settings, self.run.group, start)
        self.expected = expected  # queue -> records its store must hold
        self.servers = server_pids(settings)
        self.spies: list[subprocess.Popen] = []

    def measure(self) -> Measured:
        try:
            self.run.workers()
            result = measured(
                "pipeline", self.expected[AUDIT], self.groups, self.start, self.finished
            )
            result.tenths = self.tenths(result.started)
            return result
        finally:
            for spy in self.spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
                spy.wait()
            self.run.stop()
            if self.spies:
                print_profiles()

    def start(self) -> float:
        began = self.run.start_bridge()
        if PROFILE_DIR:
            self.spies = profile(self.run)
        return began

    def finished(self) -> float | None:
        """When the last task that completed the set ended (None: not yet)."""
        handled = self.run.handled()
        last = 0.0
        for queue, expected in self.expected.items():
            steps = handled.get(queue)
            if not steps or steps[-1][1] < expected:
                return None
            last = max(last, steps[-1][0])
        return last

    def tenths(self, t0: float) -> list[float]:
        """msg/s over each tenth of the backlog, by records stored in the entity stores."""
        stored = []  # (time, records a task stored)
        for queue, steps in self.run.handled().items():
            if queue != AUDIT:
                previous = [0, *(n for _, n in steps)]
                stored += [(t, n - before) for (t, n), before in zip(steps, previous, strict=False)]
        stored.sort()
        total = sum(n for q, n in self.expected.items() if q != AUDIT)
        ends, done = [t0], 0
        for t, n in stored:
            done += n
            while len(ends) <= 10 and done >= total * len(ends) / 10:
                ends.append(t)
        share = total / 10
        return [share / max(b - a, 1e-3) for a, b in zip(ends, ends[1:], strict=False)]

    def groups(self) -> dict[str, list[int]]:
        run = self.run
        return {"bridge": run.pids("bridge"), "workers": run.pids("worker-"), **self.servers}


PROFILE_DIR: Path | None = None


def profile(run: Run) -> list[subprocess.Popen]:
    """py-spy (dev requirement) samples the bridge and each worker's pool process."""
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    targets = {"bridge": run.processes.named["bridge"].pid}
    for name, proc in run.processes.named.items():
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


# --- report --------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8,.0f}  ({min(values):,.0f}-{max(values):,.0f})"


NAMES = {"naive": "naive per-record", "direct": "parallel direct", "pipeline": "pipeline"}


def report(runs: dict[str, list[Measured]]) -> None:
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


def plot(
    path: Path, by_batch: dict[int, dict[str, list[Measured]]], latencies: list[tuple]
) -> None:
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
    machine = MachineLoad()
    global PROFILE_DIR
    PROFILE_DIR = Path(args.profile) if args.profile else None
    settings = bench_settings()
    ensure_topics(settings)
    names = topics(settings)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    _, start = offsets(settings, names.entities)
    workload = records(args.records, settings.entities)
    kafka = producer(settings)
    for entity, key, value in workload:
        kafka.send(names.of(entity), key=key, value=value)
    kafka.flush()
    kafka.close()
    expected = per_store(workload, settings.entities)
    print(
        f"backlog: {len(workload):,} records ("
        + ", ".join(f"{store} {n:,}" for store, n in expected.items())
        + f"); {args.repeat} interleaved runs per peer"
    )

    by_batch: dict[int, dict[str, list[Measured]]] = {}
    for batch in sizes:
        os.environ["BRIDGE_BATCH_SIZE"] = str(batch)  # the direct sinks' batches too
        peers = {
            "naive": lambda: run_sinks(settings, start, {"naive": args.naive_records}, "naive"),
            "direct": lambda: run_sinks(settings, start, expected, "direct"),
            "pipeline": lambda b=batch: PipelineRun(settings, start, expected, b).measure(),
        }
        chosen = [p for p in args.peers.split(",") if p != "naive" or batch == sizes[0]]
        runs: dict[str, list[Measured]] = {p: [] for p in chosen}
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
                ms = [1000 * x for x in steady(settings, peer, rate, args.seconds).latencies]
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
    print(f"\n{machine.summary()}")
    if args.plot:
        plot(Path(args.plot), by_batch, latencies)


if __name__ == "__main__":
    main()
