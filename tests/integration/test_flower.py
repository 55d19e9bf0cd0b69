"""Flower behind basic auth: a real `celery -A tasks flower` on an ephemeral loopback port."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import free_port, status, wait_until

CREDENTIALS = "ops:correct-horse"


def start_flower(processes, port: int, env: dict[str, str]) -> subprocess.Popen:
    return processes.start(
        "flower",
        "-m",
        "celery",
        "-A",
        "tasks",
        "flower",
        "--address=127.0.0.1",
        f"--port={port}",
        env={"FLOWER_UNAUTHENTICATED_DEMO": "", **env},
    )


def test_flower_requires_basic_auth(processes):
    port = free_port()
    proc = start_flower(processes, port, {"FLOWER_BASIC_AUTH": CREDENTIALS})
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
