"""The whole pipeline on the secure stack, each process with its own principal only (started
as `scripts/run --secure` starts them: through scripts/as): generated records reach every store,
nothing is dead-lettered or parked, and `check` and `verify` find the stores equal to the log,
though every server's certificate was renewed and reloaded while records flowed.
Then: no secret in any process's command line or log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bookstore.pki import served_certificate
from tests.security.conftest import REPO, process_env
from tests.support import Processes, free_port, get_json

WORKERS = {
    "postgres": "worker-postgres",
    "mongo": "worker-mongo",
    "redis": "worker-redis",
    "audit": "worker-audit",
    "generate": "generator",
}
CREDENTIALS = "ops:flower-test-only"


def as_(principal: str) -> tuple[str, str]:
    """What a process is started through to hold `principal`'s rights only (scripts/as)."""
    return (str(REPO / "scripts/as"), principal)


def operator(*args: str, audit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bookstore", *args],
        cwd=REPO,
        env=process_env("operator", AUDIT_LOG_PATH=str(audit)),
        capture_output=True,
        text=True,
        timeout=300,
    )


def stats(audit: Path) -> dict:
    result = operator("stats", "--json", audit=audit)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Each server's TLS port (PostgreSQL's: upgraded from plaintext, SSLRequest).
TLS_PORTS = {"kafka": 9092, "rabbitmq": 5671, "redis": 6379, "postgres": 5432, "mongo": 27017}


def served_serial(port: int, ca: str) -> int:
    """The serial number of the certificate a new connection to `port` is shown."""
    postgres = port == TLS_PORTS["postgres"]
    return served_certificate("127.0.0.1", port, ca, postgres=postgres).serial_number


@dataclass
class Rested:
    run: Processes
    audit: Path
    before: dict  # stats
    after: dict
    served: dict[str, tuple[int, int]]  # server -> certificate serial before, after the reload
    flowed_after_reload: int  # orders stored after it


def orders_reach(audit: Path, count: int, run: Processes, logs: Path) -> None:
    deadline = time.monotonic() + 180
    while stats(audit)["orders"] < count:
        assert time.monotonic() < deadline, "orders stopped; logs: " + str(logs)
        for name, proc in run.named.items():
            assert proc.poll() is None, f"{name} exited:\n{run.log(name)[-3000:]}"
        time.sleep(2)


@pytest.fixture(scope="module")
def pipeline(state: Path, ca: str, tmp_path_factory) -> Iterator[Rested]:
    """The pipeline ran for a while, every server's certificate was renewed and reloaded
    (`scripts/services reload-tls --renew`) while records flowed, more flowed, and it came to
    rest."""
    logs = tmp_path_factory.mktemp("secure-pipeline")
    audit = state / "data" / "messages.log"  # the stack's: kept, and removed, with its topics
    run = Processes(
        logs,
        {
            "BOOKSTORE_ENV_FILE": "",
            "AUDIT_LOG_PATH": str(audit),
            "GOOGLE_BOOKS_BASE_URL": "http://127.0.0.1:9/books/v1",  # offline: Faker's books
            "BRIDGE_METRICS_PORT": "0",
            "FLOWER_BASIC_AUTH": CREDENTIALS,
        },
    )
    before = stats(audit)
    try:
        for queue, principal in WORKERS.items():
            run.worker(queue, via=as_(principal))
        run.start("bridge", "-m", "bridge", via=as_("bridge"))
        port = free_port()
        flower = ("-m", "celery", "-A", "tasks", "flower", "--address=127.0.0.1", f"--port={port}")
        run.start("flower", *flower, via=as_("flower"))
        run.beat(logs / "beat-schedule", 1.0, via=as_("beat"))
        orders_reach(audit, before["orders"] + 100, run, logs)
        old = {server: served_serial(port, ca) for server, port in TLS_PORTS.items()}
        reload = subprocess.run(
            [str(REPO / "scripts/services"), "reload-tls", "--renew"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert reload.returncode == 0, reload.stderr
        served = {s: (old[s], served_serial(port, ca)) for s, port in TLS_PORTS.items()}
        reloaded = stats(audit)["orders"]
        orders_reach(audit, reloaded + 100, run, logs)
        assert flower_lists_workers(f"http://127.0.0.1:{port}"), run.log("flower")[-3000:]
        run.stop(run.named["beat"])
        deadline = time.monotonic() + 180
        while True:  # at rest: every record committed and every queue empty
            now = stats(audit)
            lag = sum(p["lag"] for p in now["lag"])
            waiting = sum(q["messages"] for q in now["queues"].values())
            if lag == 0 and waiting == 0:
                break
            assert time.monotonic() < deadline, f"not at rest: lag {lag}, waiting {waiting}"
            time.sleep(2)
        yield Rested(run, audit, before, now, served, now["orders"] - reloaded)
    finally:
        run.stop_all()


def flower_lists_workers(url: str, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(get_json(f"{url}/api/workers?refresh=1", CREDENTIALS)) >= len(WORKERS):
                return True
        except (OSError, ValueError):
            pass
        time.sleep(2)
    return False


def test_records_flow_end_to_end_each_process_with_its_own_rights(pipeline):
    run, audit, before, after = pipeline.run, pipeline.audit, pipeline.before, pipeline.after
    assert after["customers"] > before["customers"]
    assert after["books"] > before["books"]
    assert after["dead_letters"] == before["dead_letters"]
    assert after["queues"]["parked"]["messages"] == 0
    check = operator("check", audit=audit)
    assert check.returncode == 0, check.stdout + check.stderr
    verify = operator("verify", audit=audit)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    refused = re.compile(r"ACCESS_REFUSED|NOPERM|AuthorizationFailed|permission denied")
    for name in run.named:
        assert not refused.search(run.log(name)), f"{name} was refused something: {run.log_dir}"


def test_certificates_renewed_and_reloaded_midstream_lose_nothing(pipeline):
    """Every server shows new connections its new certificate, without a restart (FerretDB
    aside: restarted), and records went on flowing: nothing lost, as the test above shows
    (dead letters, parked, check and verify)."""
    for server, (old, new) in pipeline.served.items():
        assert new != old, f"{server} still shows its old certificate"
    assert pipeline.flowed_after_reload >= 100


def secrets(state: Path) -> set[str]:
    return {p.read_text().strip() for p in (state / "principals").glob("*/*.password")}


def test_no_secret_on_any_command_line_or_in_any_log(pipeline, state):
    import psutil

    run = pipeline.run
    known = secrets(state)
    assert len(known) > 20
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        leaked = [s for s in known if s in cmdline]
        assert not leaked, f"a secret on the command line of {proc.pid}: {cmdline[:80]}..."
    logs = [*(state / "logs").glob("*"), *run.log_dir.glob("*.log")]
    for path in logs:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [s for s in known if s in text], f"a secret in {path}"
