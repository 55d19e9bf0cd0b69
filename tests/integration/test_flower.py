"""Flower behind basic auth: a real `celery -A tasks flower` on an ephemeral loopback port."""

from __future__ import annotations

import re

import pytest

from bookstore.broker import AUDIT_TASK, persist_task
from tests.integration.pipeline import Pipeline, build_dataset, produce
from tests.support import TABLE, free_port, get_json, start_flower, status, wait_until

CREDENTIALS = "ops:correct-horse"


@pytest.mark.parametrize("given", ["value", "file"])
def test_flower_requires_basic_auth(processes, tmp_path, given):
    port = free_port()
    if given == "file":  # compose's secret
        (secret := tmp_path / "FLOWER_BASIC_AUTH").write_text(CREDENTIALS + "\n")
        env = {"FLOWER_BASIC_AUTH": "", "FLOWER_BASIC_AUTH_FILE": str(secret)}
    else:
        env = {"FLOWER_BASIC_AUTH": CREDENTIALS}
    proc = start_flower(processes, port, env)
    base = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert proc.poll() is None, proc.log_path.read_text()  # type: ignore[attr-defined]
        return status(f"{base}/healthcheck") is not None

    wait_until(answering, 120, "Flower to answer")

    assert status(f"{base}/") == 401
    assert status(f"{base}/api/workers") == 401
    assert status(f"{base}/", "ops:wrong") == 401
    assert status(f"{base}/", CREDENTIALS) == 200
    assert status(f"{base}/api/workers", CREDENTIALS) == 200
    # Documented: Flower serves these two without auth (hence loopback-only publishing).
    assert status(f"{base}/healthcheck") == 200
    assert status(f"{base}/metrics") == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLOWER_BASIC_AUTH": ""}, "FLOWER_BASIC_AUTH=user:password"),
        ({"FLOWER_BASIC_AUTH": "no-password-here"}, "must be user:password"),
        ({"FLOWER_BASIC_AUTH": "", "FLOWER_BASIC_AUTH_FILE": "/nonexistent"}, "No such file"),
        ({"FLOWER_BASIC_AUTH": "a:b", "FLOWER_BASIC_AUTH_FILE": "/dev/null"}, "both set"),
    ],
)
def test_flower_refuses_to_start_without_credentials(processes, env, message):
    port = free_port()
    proc = start_flower(processes, port, env)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    log = proc.log_path.read_text()  # type: ignore[attr-defined]
    assert "refusing to start" in log and message in log
    assert "Traceback" not in log
    assert status(f"http://127.0.0.1:{port}/healthcheck") is None


def test_flower_local_demo_is_explicit_and_loopback_only(processes):
    demo = {"FLOWER_BASIC_AUTH": "", "FLOWER_UNAUTHENTICATED_DEMO": "1"}
    port = free_port()
    flower = ("-m", "celery", "-A", "tasks", "flower", f"--port={port}")

    public = processes.start("flower-demo-public", *flower, "--address=0.0.0.0", env=demo)
    public.wait(timeout=120)
    assert public.returncode != 0
    assert "loopback only" in public.log_path.read_text()  # type: ignore[attr-defined]

    local = processes.start("flower-demo", *flower, env=demo)  # no --address: forced to loopback
    wait_until(lambda: status(f"http://127.0.0.1:{port}/") == 200, 120, "the demo Flower")
    assert local.poll() is None


def _flower_tasks(base: str) -> dict[str, dict]:
    return get_json(f"{base}/api/tasks", CREDENTIALS, timeout=10)


SUCCEEDED = re.compile(r"Task (\S+)\[([0-9a-f-]{36})\] succeeded")


def test_flower_shows_every_task_the_pipeline_runs(processes, settings, tmp_path):
    """Every persistence and audit task a worker ran is in Flower, as succeeded (task events:
    what #20 may change about them must keep this true)."""
    port = free_port()
    start_flower(processes, port, {"FLOWER_BASIC_AUTH": CREDENTIALS})
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: status(f"{base}/healthcheck") == 200, 120, "Flower to answer")
    pipeline = Pipeline(processes, settings, tmp_path)
    pipeline.start_workers()
    pipeline.start_bridge()
    pipeline.wait_assigned()
    logs = [w.log_path for w in pipeline.workers.values()]  # type: ignore[attr-defined]

    def ran() -> dict[str, str]:
        return {i: name for p in logs for name, i in SUCCEEDED.findall(p.read_text())}

    def shown() -> set[str]:
        tasks = _flower_tasks(base)
        return {i for i, task in tasks.items() if task.get("state") == "SUCCESS"}

    # Flower receives events only once it consumes them: the first task it shows says it does
    warm = build_dataset(2, 1, 2)
    produce(settings, warm.messages)
    wait_until(lambda: shown() & set(ran()), 120, "Flower to show a task")
    before = set(ran())

    ds = build_dataset(10, 5, 20)
    pipeline.wait_audited(produce(settings, ds.messages))
    every_kind = {*(persist_task(e) for e in TABLE), AUDIT_TASK}
    wait_until(
        lambda: {n for i, n in ran().items() if i not in before} >= every_kind,
        120,
        "a task of every kind to run",
    )
    wait_until(lambda: set(ran()) - before <= shown(), 60, "Flower to show every task that ran")
