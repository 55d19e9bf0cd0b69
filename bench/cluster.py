"""Benchmark: what replication costs, the pipeline on the single stack against the three-node one.

    scripts/services up && scripts/services up --cluster    # both stacks, side by side
    .venv/bin/python -m bench.cluster [--records 30000] [--repeat 3] [--batch-size 500]

The same backlog of valid records is produced to each stack's Kafka (topics `bench.*`); runs of
the pipeline (bridge + one worker per queue, as bench/pipeline.py runs it) alternate between the
stacks, each draining the backlog into empty stores of its own. Reported per stack: records/s
(median and range) and CPU-seconds per record of every process and server (the three Kafka and
three RabbitMQ nodes on the cluster; the stores are the same servers on both), and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from pathlib import Path

from bench.harness import REPO, VHOST, bench_settings, per_store, producer, records
from bench.pipeline import Measured, PipelineRun
from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.kafka import offsets
from bookstore.topic_config import ensure_topics
from tests.support import on_vhost


def cluster_settings(single: Settings) -> Settings:
    """The three-node stack, as `scripts/services env` points processes at it."""
    env = subprocess.run(
        [str(REPO / "scripts/services"), "env"], capture_output=True, text=True, check=True
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if "=" in line
    )
    kafka = values["KAFKA_BOOTSTRAP_SERVERS"].strip("'")
    if "CELERY_BROKER_URL_FILE" in values:  # the secure stack's, in a file
        broker = Path(values["CELERY_BROKER_URL_FILE"].strip("'")).read_text().strip()
    else:
        broker = values["CELERY_BROKER_URL"].strip("'")
    if "," not in kafka:
        raise SystemExit("the three-node stack is not up: scripts/services up --cluster")
    return single.replace(kafka_bootstrap_servers=kafka, celery_broker_url=on_vhost(broker, VHOST))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30000, help="backlog size")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per stack")
    parser.add_argument("--batch-size", type=int, default=500, help="BRIDGE_BATCH_SIZE")
    parser.add_argument(
        "--cluster-only",
        action="store_true",
        help="the three-node stack alone (no ratio: a check that it runs, where only it is up)",
    )
    args = parser.parse_args()
    single = bench_settings().replace(
        kafka_bootstrap_servers="127.0.0.1:9092",
        celery_broker_url=on_vhost("amqp://guest:guest@127.0.0.1:5672//", VHOST),
    )
    stacks = {"single node": single, "three nodes": cluster_settings(single)}
    if args.cluster_only:
        del stacks["single node"]
    workload = records(args.records, single.entities)
    expected = per_store(workload, single.entities)
    starts = {}
    for name, settings in stacks.items():
        ensure_topics(settings)
        names = topics(settings)
        _, starts[name] = offsets(settings, names.entities)
        kafka = producer(settings)
        for entity, key, value in workload:
            kafka.send(names.of(entity), key=key, value=value)
        kafka.flush()
        kafka.close()
    print(f"backlog: {len(workload):,} records on each stack; {args.repeat} runs each, alternating")

    runs: dict[str, list[Measured]] = {name: [] for name in stacks}
    for i in range(args.repeat):
        for name, settings in stacks.items():
            pipeline = PipelineRun(settings, starts[name], expected, args.batch_size)
            runs[name].append(pipeline.measure())
        print(f"  run {i + 1}: " + ", ".join(f"{n} {r[-1].rate:,.0f}/s" for n, r in runs.items()))

    print(f"\n{'stack':<14}{'records/s median (range)':>28}{'CPU µs/record':>15}  by process")
    for name, rs in runs.items():
        rates = [r.rate for r in rs]
        cpu = statistics.median(r.cpu_us_per_record for r in rs)
        parts = {g: statistics.median(r.cpu[g] / r.records * 1e6 for r in rs) for g in rs[0].cpu}
        spread = f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"
        by = "  ".join(f"{g} {us:,.0f}" for g, us in parts.items())
        print(f"{name:<14}{spread:>28}{cpu:>15,.0f}  {by}")
    if args.cluster_only:
        return
    single_runs, cluster_runs = runs.values()
    rate = statistics.median(r.rate for r in cluster_runs) / statistics.median(
        r.rate for r in single_runs
    )
    cpu = statistics.median(r.cpu_us_per_record for r in cluster_runs) / statistics.median(
        r.cpu_us_per_record for r in single_runs
    )
    print(f"\nthree nodes / single node: records/s {rate:.2f}, CPU per record {cpu:.2f}")


if __name__ == "__main__":
    main()
