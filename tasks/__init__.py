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
def _declare_queues(sender, **_) -> None:
    """Before consuming: the parked queue must exist before any task can be rejected into it."""
    from tasks.queues import declare

    declare(sender.app)
