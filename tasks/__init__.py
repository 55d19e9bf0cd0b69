"""The Celery app: `celery -A tasks worker -Q <queue>` / `celery -A tasks beat`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from celery import Celery
from celery.signals import worker_init

from bookstore.config import Settings

app = Celery(
    "bookstore",
    include=["tasks.persist", "tasks.audit", "tasks.generate"],
    task_cls="tasks.policy:PolicyTask",  # every task follows the one error policy
    control="tasks.control:Control",  # remote control on queues that outlive a node
)
app.config_from_object("celeryconfig")

T = TypeVar("T")


def settings() -> Settings:
    """The settings this process runs with, as the Celery config edge read them."""
    return app.conf._bookstore_settings


def per_process(build: Callable[[Settings], T]) -> Callable[[], T]:
    """`build(settings())` on first use in each process: prefork children build their own
    connections instead of sharing their parent's."""
    built: dict[int, T] = {}

    def get() -> T:
        pid = os.getpid()
        if pid not in built:
            built.clear()
            built[pid] = build(settings())
        return built[pid]

    return get


@worker_init.connect
def _before_consuming(sender, **_) -> None:
    """Before a worker consumes: the stores it writes (those of the queues it consumes, `-Q`)
    must be configured, and those queues declared as this release declares them (`parked`
    first, if missing: a task may be rejected into it at once); a bad store variable, or a
    queue of an earlier release holding tasks, stops it with one line saying what to do
    (SystemExit: Celery logs and ignores anything else a signal handler raises)."""
    from bookstore.broker import QueueMigrationNeeded, declare, reach
    from bookstore.config import ConfigError
    from bookstore.entities import TableError

    consumed = set(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
    try:
        for spec in settings().entities.stores:
            if spec.name in consumed:
                spec.check()
                settings().store(spec.name)
    except ConfigError as exc:
        raise SystemExit(f"worker: configuration error: {exc}") from None
    except TableError as exc:
        raise SystemExit(f"worker: {exc}") from None
    try:
        with sender.app.connection_for_write() as conn:
            declare(reach(conn), settings().entities, only=consumed)
    except QueueMigrationNeeded as exc:
        raise SystemExit(f"worker: {exc}") from None
