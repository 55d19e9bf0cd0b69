"""`scripts/run` starts every product process and SIGTERM stops them all, leaving nothing behind.

Honcho puts each process in its own session, so "ours" is tracked by an environment marker that
every descendant inherits: after the stop no process on the machine may carry it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from pathlib import Path

from tests.support import REPO, TABLE, free_port, status, wait_until

PROCESSES = (
    *(f"worker-{queue}" for queue in TABLE.celery_queues),  # the Procfile: a worker per queue
    "beat",
    "bridge",
    "flower",
)
MARKER = "LIVROS_RUN_TEST_MARKER"


def marked_pids(token: str) -> list[int]:
    """Pids of live processes whose environment carries our marker."""
    needle = f"{MARKER}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def test_scripts_run_starts_everything_and_sigterm_stops_everything(tmp_path):
    token = uuid.uuid4().hex
    port = free_port()
    log_path = tmp_path / "run.log"
    env = {
        **os.environ,
        MARKER: token,
        "RUN_ENV_FILE": str(tmp_path / "no.env"),  # a developer's .env must not leak in
        "FLOWER_BASIC_AUTH": "",  # exercise the generated password
        "FLOWER_UNAUTHENTICATED_DEMO": "",
        "FLOWER_PORT": str(port),
        "AUDIT_LOG_PATH": str(tmp_path / "messages.log"),
        "BEAT_SCHEDULE_FILE": str(tmp_path / "celerybeat-schedule"),
        "WORKER_CONCURRENCY": "1",
    }
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            [str(REPO / "scripts" / "run")],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:

        def output() -> str:
            return log_path.read_text(errors="replace")

        wait_until(
            lambda: (
                all(f"{name}.1 started (pid=" in output() for name in PROCESSES)
                or run.poll() is not None
            ),
            600,  # includes scripts/bootstrap and scripts/services up
            "scripts/run to start every Procfile process",
        )
        assert all(f"{name}.1 started (pid=" in output() for name in PROCESSES), output()
        password = re.search(r"user: admin\s+password: (\S+)", output())
        assert password, output()

        def everything_up() -> bool:
            text = output()
            return (
                all(re.search(rf"{q}@\S+ ready\.", text) for q in TABLE.celery_queues)
                and "beat: Starting..." in text
                and re.search(r"bridge\.1\s*\|.*assigned", text)
                and status(f"http://127.0.0.1:{port}/", f"admin:{password[1]}") == 200
            )

        wait_until(
            lambda: everything_up() or run.poll() is not None, 300, "every process to be ready"
        )
        # Honcho stops everything when one process exits: any process stopping is a failure.
        assert run.poll() is None, output()
        assert status(f"http://127.0.0.1:{port}/") == 401
        assert marked_pids(token)

        os.kill(run.pid, signal.SIGTERM)  # scripts/run exec'd honcho: as Ctrl-C does
        run.wait(timeout=120)
        wait_until(lambda: not marked_pids(token), 60, "every process of scripts/run to exit")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        for pid in marked_pids(token):
            os.kill(pid, signal.SIGKILL)
