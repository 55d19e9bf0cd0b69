"""bench.security's measurement, briefly, on the secure stack (its outer loop starts stacks in
namespaces of their own, which this tier cannot nest)."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.security import RESULT
from tests.security.conftest import REPO, process_env


def test_the_security_benchmark_measures_the_secure_stack():
    done = subprocess.run(
        [sys.executable, "-m", "bench.security", "--inner", "60", "3", "600"],
        cwd=REPO,
        env=process_env("operator"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith(RESULT)]
    figures = json.loads(line.removeprefix(RESULT))
    assert figures["backlog_records_per_s"] > 0
    assert figures["steady_cpu_ms_per_record"] > 0
