"""Benchmark: what TLS and authentication cost, the secure stack against the plaintext one.

    .venv/bin/python -m bench.security [--cluster] [--rate 300] [--seconds 30] [--records 20000]
                                       [--repeat 2]

Each run starts a stack of its own in a fresh network namespace (scripts/in-netns, as root):
`scripts/services up [--cluster]` or `up [--cluster] --secure`, the runs alternating (--cluster:
three Kafka and three RabbitMQ nodes), and measures there, as the
operator, the pipeline at a steady `--rate` for `--seconds` (CPU per record of every process and
server, latency produce -> stored, p50 and p99: bench.steady) and draining a backlog of
`--records` (records per second and CPU per record: bench.pipeline). Figures are medians per
stack, and the secure stack's as ratios to the plaintext one's, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench.harness import REPO, MachineLoad, per_store, percentile, producer, records

MODES = {"plaintext": "", "secure": "--secure"}
RESULT = "bench.security result: "


def inner(rate: float, seconds: float, n: int) -> dict[str, float]:
    """The measurements on the stack that is up (inside its namespace)."""
    from bench.harness import bench_settings
    from bench.pipeline import PipelineRun
    from bench.steady import steady
    from bookstore.entities import topics
    from bookstore.kafka import offsets
    from bookstore.topic_config import ensure_topics

    settings = bench_settings()
    ensure_topics(settings)
    at_rate = steady(settings, "pipeline", rate, seconds)
    ms = [1000 * x for x in at_rate.latencies]
    names = topics(settings)
    _, start = offsets(settings, names.entities)
    workload = records(n, settings.entities)
    kafka = producer(settings)
    for entity, key, value in workload:
        kafka.send(names.of(entity), key=key, value=value)
    kafka.flush()
    kafka.close()
    backlog = PipelineRun(settings, start, per_store(workload, settings.entities), 500).measure()
    return {
        "steady_cpu_ms_per_record": at_rate.cpu_ms_per_record,
        "steady_p50_ms": percentile(ms, 0.5),
        "steady_p99_ms": percentile(ms, 0.99),
        "backlog_records_per_s": backlog.rate,
        "backlog_cpu_us_per_record": backlog.cpu_us_per_record,
    }


def one_run(mode: str, cluster: bool, rate: float, seconds: float, n: int) -> dict[str, float]:
    """A stack of `mode` in a namespace of its own, measured; its figures."""
    layout = "--cluster " if cluster else ""
    script = (
        f"scripts/services up {layout}{MODES[mode]} >/dev/null && "
        'eval "$(scripts/services env)" && '
        f"exec .venv/bin/python -m bench.security --inner {rate} {seconds} {n}"
    )
    env = {**os.environ, "NETNS_SERVICES_DIR": str(REPO / ".services/netns-bench")}
    done = subprocess.run(
        [str(REPO / "scripts/in-netns"), "--fresh", "bash", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line.removeprefix(RESULT))
    raise RuntimeError(f"{mode} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def main() -> None:
    if sys.argv[1:2] == ["--inner"]:
        rate, seconds, n = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
        print(RESULT + json.dumps(inner(rate, seconds, n)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", action="store_true", help="three Kafka and RabbitMQ nodes")
    parser.add_argument("--rate", type=float, default=300, help="records/s of the steady load")
    parser.add_argument("--seconds", type=float, default=30, help="of the steady load")
    parser.add_argument("--records", type=int, default=20_000, help="backlog size")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs per stack")
    args = parser.parse_args()
    machine = MachineLoad()
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for i in range(args.repeat):
        for mode, rs in runs.items():
            rs.append(one_run(mode, args.cluster, args.rate, args.seconds, args.records))
            print(f"  run {i + 1}, {mode}: {json.dumps(rs[-1])}", flush=True)
    print(
        f"\n{'the cluster' if args.cluster else 'the single stack'}:"
        f" the pipeline at {args.rate:,.0f} records/s for {args.seconds:.0f} s, and draining"
        f" {args.records:,} records; medians of {args.repeat} runs per stack"
    )
    print(f"{'figure':<28}{'plaintext':>12}{'secure':>12}{'secure/plain':>14}")
    for figure in runs["plaintext"][0]:
        plain = statistics.median(r[figure] for r in runs["plaintext"])
        secure = statistics.median(r[figure] for r in runs["secure"])
        print(f"{figure:<28}{plain:12.2f}{secure:12.2f}{secure / plain:13.2f}x")
    print(f"\n{machine.summary()}")


if __name__ == "__main__":
    main()
