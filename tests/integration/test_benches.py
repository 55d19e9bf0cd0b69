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
