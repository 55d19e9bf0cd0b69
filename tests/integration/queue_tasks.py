"""Tasks of the queue tests (tests/integration/test_queues.py), on the product's Celery app and so
under its error policy and queues: a worker started with `--include tests.integration.queue_tasks`
runs them. Each reports what happened in a Redis list named by the test (TEST_EVENTS_URL)."""

from __future__ import annotations

import os

import redis

from tasks import app

# Their queue, on which the tests send them and to which their retries return: one that parks
# (generate's ticks are dropped instead).
QUEUE = "audit"
app.conf.task_routes = {**app.conf.task_routes, "tests.*": {"queue": QUEUE, "routing_key": QUEUE}}


def _report(run: str, event: str) -> int:
    """Append `event` to the run's list; returns how many times it was reported."""
    r = redis.Redis.from_url(os.environ["TEST_EVENTS_URL"])
    r.rpush(run, event)
    return r.lrange(run, 0, -1).count(event.encode())


@app.task(name="tests.flaky", bind=True)
def flaky(self, run: str, failures: int) -> None:
    """Fails as a server outage would `failures` times (the policy retries it), then succeeds."""
    if _report(run, "flaky-run") <= failures:
        raise ConnectionError("the store is away (a test)")
    _report(run, "flaky-done")


@app.task(name="tests.quick")
def quick(run: str, n: int) -> None:
    _report(run, f"quick-{n}")


@app.task(name="tests.crash")
def crash(run: str) -> None:
    """Kills its worker process, as a record that crashes a driver would."""
    _report(run, "crash-run")
    os._exit(1)
