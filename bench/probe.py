"""Loaded into the benchmarks' workers (`celery worker --include bench.probe`): each worker
reports, as JSON lines appended to BENCH_EVENTS, when it is ready and, for every task it ran, when
the task ended and how many records it handled. The benchmark learns the pipeline's end from
these, as it learns its sinks' from theirs (bench/sinks.py), instead of reading logs or polling
the servers it measures. Nothing of the product imports it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery.signals import task_success, worker_ready


def _report(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "at": time.time(), **fields}) + "\n"
    with open(os.environ["BENCH_EVENTS"], "a") as events:  # one short append: never interleaved
        events.write(line)


@worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    for queue in sender.app.amqp.queues.consume_from or sender.app.amqp.queues:
        _report("ready", queue=queue)


@task_success.connect
def _done(sender: Any = None, result: Any = None, **_: Any) -> None:
    """A persistence task returns {"stored": n, "dead_letters": d}; the audit task a count."""
    queue = sender.app.amqp.router.route({}, sender.name)["queue"].name
    handled = sum(result.values()) if isinstance(result, dict) else int(result)
    _report("done", queue=queue, records=handled)
