"""The task events the workers send, for Flower: `task-received`, `task-succeeded`,
`task-failed`, `task-retried`, `task-rejected`, but not `task-started`.

Flower shows a task from its `task-received` event on and its outcome from the event that ends
it; `task-started` only moved it from received to started, at a publish (and a confirm) per task.
Without it the workers and RabbitMQ spend about a sixth less per record at a steady load
(docs/performance.md); `tests/integration/test_flower.py` holds that Flower still shows every task.
"""

from __future__ import annotations

import celery.worker.request


class Request(celery.worker.request.Request):
    def send_event(self, type: str, **fields) -> None:
        if type != "task-started":
            super().send_event(type, **fields)
