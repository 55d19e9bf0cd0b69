"""`scripts/run`'s processes under honcho, each kept running by `scripts/keep-running`: a process
that crashes after it ran is started again and the others carry on; one that cannot start stops
everything, saying which and why. Stand-in processes, a real honcho."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO, wait_until

KEEP = f"{REPO / 'scripts/keep-running'} --start-seconds 1 --backoff 0.2 --tries 3"
STEADY = f"steady: {sys.executable} -c 'import time; time.sleep(600)'"


def honcho(tmp_path: Path, *lines: str) -> tuple[subprocess.Popen, Path]:
    procfile = tmp_path / "Procfile"
    procfile.write_text("\n".join(lines) + "\n")
    output = tmp_path / "honcho.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "honcho"), "start", "-f", str(procfile)],
        cwd=tmp_path,
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    return proc, output


def child(tmp_path: Path, *runs: tuple[float, int, str]) -> str:
    """A process whose n-th start runs `runs[n]` = (seconds, exit status, last words), the last
    one again for every start after; it counts its starts in a file."""
    script = tmp_path / "child.py"
    script.write_text(
        "import pathlib, sys, time\n"
        f"runs = {list(runs)!r}\n"
        "count = pathlib.Path('starts')\n"
        "n = int(count.read_text()) if count.exists() else 0\n"
        "count.write_text(str(n + 1))\n"
        "seconds, status, words = runs[min(n, len(runs) - 1)]\n"
        "time.sleep(seconds)\n"
        "print(words, file=sys.stderr, flush=True)\n"
        "sys.exit(status)\n"
    )
    return f"{sys.executable} {script}"


def starts(tmp_path: Path) -> int:
    count = tmp_path / "starts"
    return int(count.read_text()) if count.exists() else 0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_process_that_crashes_after_running_is_started_again_and_the_others_carry_on(tmp_path):
    crash = child(tmp_path, (1.5, 3, "CRITICAL Unrecoverable error: NotFound(404)"))
    proc, output = honcho(tmp_path, f"crashy: {KEEP} -- {crash}", STEADY)
    try:
        wait_until(lambda: starts(tmp_path) >= 3, 30, "three starts of the crashing process")
        assert proc.poll() is None, output.read_text()
        text = output.read_text()
        assert re.search(
            r"crashy\.1 +\| keep-running: exited with status 3 after \d+ s; last error: CRITICAL "
            r"Unrecoverable error: NotFound\(404\)\. Starting it again in 0\.2 s\.",
            text,
        ), text
        assert "steady.1 stopped" not in text

        os.kill(proc.pid, signal.SIGTERM)  # as Ctrl-C in scripts/run
        assert proc.wait(timeout=30) is not None
        time.sleep(2)
        assert "Starting it again" not in output.read_text().split("sending SIGTERM")[-1]
    finally:
        stop(proc)


def test_a_process_that_cannot_start_stops_everything_and_says_why(tmp_path):
    broken = child(tmp_path, (0, 2, "configuration error: BRIDGE_BATCH_SIZE='0': too small"))
    proc, output = honcho(tmp_path, f"bridge: {KEEP} -- {broken}", STEADY)
    try:
        assert proc.wait(timeout=30) == 2, output.read_text()
        text = output.read_text()
        assert starts(tmp_path) == 1  # not retried: nothing suggests it would start next time
        assert (
            "| keep-running: exited with status 2 after 0 s; last error: configuration "
            "error: BRIDGE_BATCH_SIZE='0': too small. It failed at its first start: giving up, "
            "which stops everything." in text
        ), text
        assert "steady.1 stopped" in text
    finally:
        stop(proc)


def test_a_restarted_process_that_keeps_failing_to_start_stops_everything(tmp_path):
    flaky = child(tmp_path, (1.5, 1, "ran a while"), (0, 1, "error: the broker refused us"))
    proc, output = honcho(tmp_path, f"worker: {KEEP} -- {flaky}", STEADY)
    try:
        assert proc.wait(timeout=60) == 1, output.read_text()
        text = output.read_text()
        assert starts(tmp_path) == 4  # the run that worked, then three failed starts
        assert "Starting it again in 0.2 s" in text and "Starting it again in 0.4 s" in text
        assert (
            "last error: error: the broker refused us. It failed 3 starts in a row: giving up"
            in text
        ), text
    finally:
        stop(proc)
