"""Every benchmark, run for a few seconds on small counts, as `python -m bench.NAME` runs it:
a benchmark that breaks fails here, not on the day someone needs its figures. (The cluster's,
bench.cluster, runs in the cluster tier.) What they print is not judged, only that they finish
and say what they measured."""

from __future__ import annotations

import pytest

from tests.support import run

SMOKE = {
    "bench.pipeline": (
        ("--records", "150", "--naive-records", "30", "--repeat", "1"),
        ("--latency", "0.5", "--seconds", "3"),
        "pipeline / parallel direct",
    ),
    "bench.steady": (("--rates", "30", "--seconds", "3", "--repeat", "1"), (), "x defaults"),
    "bench.rebuild": (("--records", "150"), (), "verify: 0 difference(s)"),
    "bench.cli": (("--repeat", "1"), (), "history (20 orders)"),
}


@pytest.mark.parametrize("bench", SMOKE)
def test_the_benchmark_runs(bench):
    size, options, says = SMOKE[bench]
    # on the benchmarks' own topics, as they run by default (the tests' prefix is `test.`)
    result = run("-m", bench, *size, *options, env={"KAFKA_TOPIC_PREFIX": "bench."}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert says in result.stdout, result.stdout[-3000:]


def test_the_soak_samples_every_process_and_server_and_ends_verified(tmp_path):
    """bench.soak, for a minute with a kill: every process and server sampled, the records
    counted, the bridge killed and started again, and the stores equal to the log at the end."""
    import csv

    options = ("--minutes", "1", "--rate", "30", "--sample-seconds", "10")
    faults = ("--warm-up-minutes", "0.3", "--kill-every", "0.5", "--out", str(tmp_path))
    result = run(
        "-m", "bench.soak", *options, *faults, env={"KAFKA_TOPIC_PREFIX": "bench."}, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "killed bridge, started again" in result.stdout
    assert "check: exit 0; verify: exit 0" in result.stdout
    with (tmp_path / "samples.csv").open() as f:
        rows = list(csv.DictReader(f))
    sampled = {r["name"] for r in rows if r["kind"] == "memory"}
    assert {"bridge", "beat", "flower", "worker-postgres", "kafka", "rabbitmq", "redis"} <= sampled
    assert {r["name"] for r in rows if r["kind"] == "disk"} >= {"kafka", "audit log"}
    assert "redis less its data" in result.stdout  # Redis judged without the data it holds
    assert [r for r in rows if r["kind"] == "data" and r["name"] == "redis"]
    held = [float(r["value"]) for r in rows if r["kind"] == "records"]
    assert held[-1] > held[0]
    assert (tmp_path / "soak.png").stat().st_size > 0
