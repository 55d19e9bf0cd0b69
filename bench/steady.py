"""Benchmark: what the pipeline costs at a steady load, beside the parallel direct sink.

    .venv/bin/python -m bench.steady [--rates 100,300,1000] [--seconds 30] [--repeat 2]
                                     [--config NAME:VAR=VALUE,VAR=VALUE ...] [--no-direct]
                                     [--naive]

Each run produces valid records (as many of each entity of the table) at a fixed rate for a
fixed time into fresh stores and a consumer group of its own (bench.harness). Per rate and per
peer (the parallel direct sink; with --naive the naive per-record sink, bench/sinks.py; the
pipeline with the product's defaults, `defaults`; each --config: the pipeline with those
variables set) it reports: CPU per record of every process and server, counted from the first
record sent until the last is stored, and split by process; records per persistence task;
latency produce -> stored, p50 and p99, of one record in ten (looked up by key in its store
every 10 ms); and the share of a core the same processes and servers used idle, in 5 s before
the first record. Runs are interleaved and repeated; figures are medians, and every pipeline
configuration is also given as a ratio to `defaults` measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import dataclass

from bench.harness import (
    REPO,
    MachineLoad,
    Run,
    bench_settings,
    cpu_by_group,
    events,
    percentile,
    producer,
    records,
    server_pids,
)
from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.kafka import commit_group_offsets, offsets
from bookstore.topic_config import ensure_topics


class Probe:
    """Looks a sample of sent records up by key in their stores every 10 ms (each store's own
    `existing_ids`); the first time each is found, minus its send time, is its latency."""

    def __init__(self, run: Run):
        self.stores = {e.name: e.open_store(run.stores) for e in run.settings.entities}
        self.pending: dict[tuple[str, str], float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.stopping = False

    def sent(self, entity: str, key: str, at: float) -> None:
        with self.lock:
            self.pending[(entity, key)] = at

    def run(self) -> None:
        while not self.stopping:
            with self.lock:
                waiting = list(self.pending)
            found = self._found(waiting)
            now = time.time()
            with self.lock:
                for k in found:
                    self.latencies.append(now - self.pending.pop(k))
            time.sleep(0.01)

    def _found(self, waiting: list[tuple[str, str]]) -> list[tuple[str, str]]:
        keys: dict[str, list[str]] = {}
        for entity, key in waiting:
            keys.setdefault(entity, []).append(key)
        return [
            (entity, key)
            for entity, wanted in keys.items()
            for key in self.stores[entity].existing_ids(wanted)
        ]

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


@dataclass
class Steady:
    peer: str
    records: int
    cpu: dict[str, float]  # process or server -> CPU-seconds, first record sent to last stored
    tasks: int  # persistence tasks the workers ran (0: not the pipeline)
    latencies: list[float]  # seconds, one record in ten
    idle: float  # share of one core the peer and the servers used before any record was sent

    @property
    def cpu_ms_per_record(self) -> float:
        return sum(self.cpu.values()) / self.records * 1e3


IDLE_SECONDS = 5.0


def steady(
    settings: Settings, peer: str, rate: float, seconds: float, env: dict[str, str] | None = None
) -> Steady:
    """Run `peer` ("naive", "direct", or "pipeline" with `env` set) on fresh stores while
    records are produced at `rate` records/s for `seconds`, after IDLE_SECONDS with none (what
    it costs to wait: a setting that saves CPU under load may cost it when idle)."""
    run = Run(settings, env)
    names = topics(settings)
    _, start = offsets(settings, names.entities)
    servers = server_pids(settings)
    table = settings.entities
    n = len(table.rows) * max(1, int(rate * seconds / len(table.rows)))
    if peer == "pipeline":
        commit_group_offsets(settings, run.group, start)
        run.workers()
        run.start_bridge()
    else:
        sinks = (  # role -> its arguments to bench/sinks.py
            {"naive": ("naive",)}
            if peer == "naive"
            else {spec.name: ("direct", spec.name) for spec in table.stores}
        )
        for role, args in sinks.items():
            commit_group_offsets(settings, f"{run.group}-{role}", start)
            # they run until stopped: their CPU is counted then
            forever = {"EXPECT": str(10**9)}
            run.processes.start(role, str(REPO / "bench/sinks.py"), *args, env=forever)
        while not all(events(run.processes.log(r), "ready") for r in sinks):
            time.sleep(0.05)
        (run.dir / "go").touch()
    probe = Probe(run)
    thread = threading.Thread(target=probe.run, daemon=True)
    thread.start()
    kafka = producer(settings)
    workload = records(n, table)  # the entities interleaved
    last = {entity: i for i, (entity, _, _) in enumerate(workload)}  # each one's: the run's end
    try:
        measured = {name: [p.pid] for name, p in run.processes.named.items()} | servers
        idle_from = sum(cpu_by_group(measured).values())
        time.sleep(IDLE_SECONDS)
        idle = (sum(cpu_by_group(measured).values()) - idle_from) / IDLE_SECONDS
        before = cpu_by_group(measured)
        began = time.time()
        for i, (entity, key, value) in enumerate(workload):
            due = began + i / rate
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            kafka.send(names.of(entity), key=key, value=value)
            if i % 10 == 0 or last[entity] == i:
                probe.sent(entity, key.decode(), time.time())
        kafka.flush()
        deadline = time.time() + 60
        while probe.pending and time.time() < deadline:
            time.sleep(0.01)
        after = cpu_by_group(measured)
    finally:
        probe.stopping = True
        thread.join()
        probe.close()
        kafka.close()
        run.stop()
    if probe.pending:
        raise RuntimeError(f"{peer}: {len(probe.pending)} sampled records never stored")
    entity_stores = set(table.store_queues)
    tasks = sum(1 for e in run.reported("done") if e["queue"] in entity_stores)
    cpu = {k: after[k] - before.get(k, 0.0) for k in after}
    return Steady(peer, n, cpu, tasks, probe.latencies, idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,300,1000", help="records/s, e.g. 100,300")
    parser.add_argument("--seconds", type=float, default=30, help="per run")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs per peer")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help="a pipeline configuration to compare with the defaults (repeatable)",
    )
    parser.add_argument("--no-direct", action="store_true", help="leave the direct sink out")
    parser.add_argument(
        "--naive",
        action="store_true",
        help="the naive per-record sink too (it keeps up with a few hundred records/s at most)",
    )
    args = parser.parse_args()
    machine = MachineLoad()
    settings = bench_settings()
    ensure_topics(settings)
    peers: dict[str, tuple[str, dict[str, str]]] = {"defaults": ("pipeline", {})}
    for spec in args.config:
        name, _, assignments = spec.partition(":")
        peers[name] = ("pipeline", dict(a.split("=", 1) for a in assignments.split(",") if a))
    if not args.no_direct:
        peers["direct"] = ("direct", {})
    if args.naive:
        peers["naive"] = ("naive", {})
    for rate in [float(r) for r in args.rates.split(",")]:
        runs: dict[str, list[Steady]] = {name: [] for name in peers}
        for i in range(args.repeat):
            for name, (peer, env) in peers.items():
                runs[name].append(steady(settings, peer, rate, args.seconds, env))
            print(
                f"  {rate:,.0f}/s run {i + 1}: "
                + ", ".join(f"{p} {r[-1].cpu_ms_per_record:.2f} ms" for p, r in runs.items())
            )
        report(rate, runs)
    print(f"\n{machine.summary()}")


def report(rate: float, runs: dict[str, list[Steady]]) -> None:
    print(f"\n== {rate:,.0f} records/s")
    print(
        f"{'peer':<14}{'CPU ms/rec':>11}{'x defaults':>11}{'rec/task':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'idle %core':>11}"
    )
    base = statistics.median(r.cpu_ms_per_record for r in runs["defaults"])
    for name, rs in runs.items():
        cpu = statistics.median(r.cpu_ms_per_record for r in rs)
        tasks = sum(r.tasks for r in rs)
        per_task = f"{sum(r.records for r in rs) / tasks:.1f}" if tasks else "-"
        ms = [1000 * x for r in rs for x in r.latencies]
        print(
            f"{name:<14}{cpu:11.3f}{cpu / base:11.2f}{per_task:>9}"
            f"{percentile(ms, 0.5):8.0f}{percentile(ms, 0.99):8.0f}"
            f"{100 * statistics.median(r.idle for r in rs):11.1f}"
        )
    print("CPU µs per record by process (median):")
    for name, rs in runs.items():
        parts = {
            g: statistics.median(r.cpu.get(g, 0) / r.records * 1e6 for r in rs) for g in rs[0].cpu
        }
        print(f"  {name:<12}" + "  ".join(f"{g} {us:,.0f}" for g, us in parts.items()))


if __name__ == "__main__":
    main()
