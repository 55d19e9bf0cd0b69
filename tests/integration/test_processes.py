"""Each process loads what it uses. Started for real, each watched with `python -X importtime`:
the bridge, beat, Flower and the CLI's commands that open no store import no store driver; and a
bad variable of one store stops only the processes that use that store, with one line naming it.

Flower's own package imports redis-py (its Redis broker support), and the `celery` command loads
Flower's command plugin into every Celery process: that import is Flower's, not the product's,
and is told apart by what imported it.
"""

from __future__ import annotations

import re

import pytest

from tests.support import Processes, free_port, run, status, wait_until

DRIVERS = ("psycopg2", "pymongo", "redis")
LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$")


def importers(output: str) -> dict[str, list[str]]:
    """Each store driver imported, and the chain of imports that brought it in, innermost
    first (from the nesting `-X importtime` prints: a module's importer is the next line less
    indented)."""
    lines = [(len(m[1]), m[2]) for m in map(LINE.match, output.splitlines()) if m]
    found = {}
    for i, (depth, module) in enumerate(lines):
        if module in DRIVERS:
            chain = [module]
            for later_depth, later in lines[i + 1 :]:
                if later_depth < depth:
                    chain.append(later)
                    depth = later_depth
                if depth == 0:
                    break
            found[module] = chain
    return found


def assert_no_store_driver(output: str, what: str) -> None:
    """No driver imported but by Flower's own package (its plugin, loaded by `celery`)."""
    brought = importers(output)
    ours = {
        driver: chain
        for driver, chain in brought.items()
        if not any(module.startswith("flower") for module in chain)
    }
    assert not ours, f"{what} imported {ours}"


STARTS = {
    "the bridge": (("-m", "bridge"), "bridge.fanout: assigned "),
    "beat": (("-m", "celery", "-A", "tasks", "beat", "--loglevel=INFO"), "beat: Starting..."),
}


@pytest.mark.parametrize("process", STARTS)
def test_a_process_that_opens_no_store_imports_no_driver(process, tmp_path):
    args, started = STARTS[process]
    processes = Processes(tmp_path, {"BEAT_SCHEDULE_FILE": str(tmp_path / "schedule")})
    try:
        proc = processes.start("it", "-X", "importtime", *args)
        wait_until(
            lambda: started in processes.log("it") or proc.poll() is not None, 120, "it to start"
        )
        assert proc.poll() is None, processes.log("it")[-3000:]
    finally:
        processes.stop_all()
    assert_no_store_driver(processes.log("it"), process)


def test_flower_imports_no_store_driver_of_the_products(tmp_path):
    port = free_port()
    processes = Processes(tmp_path, {"FLOWER_BASIC_AUTH": "ops:a-password"})
    args = ("-m", "celery", "-A", "tasks", "flower", "--address=127.0.0.1", f"--port={port}")
    try:
        processes.start("flower", "-X", "importtime", *args)
        wait_until(lambda: status(f"http://127.0.0.1:{port}/healthcheck") == 200, 120, "Flower")
    finally:
        processes.stop_all()
    assert_no_store_driver(processes.log("flower"), "Flower")


@pytest.mark.parametrize(
    "command", [("--help",), ("parked", "list"), ("queues", "migrate"), ("topics",)]
)
def test_a_cli_command_that_opens_no_store_imports_no_driver(command):
    result = run("-X", "importtime", "-m", "bookstore", *command)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # topics: 1 if one differs
    assert_no_store_driver(result.stderr, " ".join(command))


def test_a_bad_store_variable_stops_only_what_uses_that_store(tmp_path):
    bad = {"MONGO_DB": "not/a/database"}
    processes = Processes(tmp_path, bad)
    try:
        mongo = processes.worker("mongo")
        mongo.wait(120)
        lines = processes.log("worker-mongo").strip().splitlines()
        assert mongo.returncode == 1 and lines[-1].startswith(
            "worker: configuration error: MONGO_DB='not/a/database'"
        ), lines[-5:]
        postgres = processes.worker("postgres")
        bridge = processes.start("bridge", "-m", "bridge")
        wait_until(lambda: " ready." in processes.log("worker-postgres"), 120, "the worker")
        wait_until(lambda: "assigned " in processes.log("bridge"), 120, "the bridge")
        assert postgres.poll() is None and bridge.poll() is None
    finally:
        processes.stop_all()
    assert run("-m", "bookstore", "parked", "list", env=bad).returncode == 0
    stats = run("-m", "bookstore", "stats", env=bad)
    assert stats.returncode == 2 and "MONGO_DB=" in stats.stderr, stats.stderr


def test_a_cli_command_fails_in_one_line_when_its_store_is_misconfigured():
    result = run("-m", "bookstore", "history", "x", env={"POSTGRES_DSN": "nonsense"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: configuration error: POSTGRES_DSN='nonsense': must be a postgresql:// url "
        "naming a database"
    ]
