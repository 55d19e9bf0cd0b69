"""Persistence tasks, one per store queue (`postgres`, `mongo`, `redis`).

Each carries a batch of raw records of one topic, as lines (bookstore.records). Records that can
never be stored are dead-lettered one by one (bookstore.persister); whatever else fails follows the
error policy of tasks/policy.py: a server away is retried for as long as it takes, anything else
is retried and then parked. Late acks make a task whose worker died run again.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from bookstore.broker import persist_task
from bookstore.config import Settings
from bookstore.entities import Entity
from bookstore.records import from_lines
from tasks import app, per_process, settings

log = logging.getLogger(__name__)


def _open_persister(settings: Settings) -> Any:
    """The stores' drivers load when a worker first writes, never where the tasks are only
    named (beat, Flower)."""
    from bookstore.persister import Persister

    return Persister(settings)


_persister = per_process(_open_persister)


def _persist(store: str, lines: str | list[dict[str, Any]]) -> dict[str, int]:
    outcome = _persister().persist(store, from_lines(lines))
    for dl in outcome.dead:
        log.warning("dead letter %s (%s): %s", dl.record.coordinates, dl.stage, dl.reason)
    return {"stored": outcome.stored, "dead_letters": len(outcome.dead)}


def _persistence_task(entity: Entity) -> Task:
    def persist(lines: str | list[dict[str, Any]]) -> dict[str, int]:
        return _persist(entity.queue, lines)

    name = persist_task(entity)
    persist.__name__ = persist.__qualname__ = name.rpartition(".")[2].replace("-", "_")
    return app.task(name=name)(persist)


# One task per entity the app runs: store_customers, store_books, store_orders.
for _entity in settings().entities:
    _task = _persistence_task(_entity)
    globals()[_task.__name__] = _task
