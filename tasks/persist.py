"""Persistence tasks, one per store queue (`postgres`, `mongo`, `redis`).

Each carries a batch of raw records of one topic. While a store (or Kafka, for dead letters) is
unreachable the task retries with exponential backoff and jitter, for as long as it takes: an
outage delays data, it never drops it. Late acks make a task whose worker died run again.
"""

from __future__ import annotations

import logging
from typing import Any

from bookstore.config import load_settings
from bookstore.kafka import KafkaUnavailable
from bookstore.persist import Persister
from bookstore.records import Record
from bookstore.stores import StoreUnavailable
from bookstore.topics import BOOKS, CUSTOMERS, ORDERS, STORE_TASK
from tasks import app

log = logging.getLogger(__name__)
_settings = load_settings()
_persister = Persister(_settings)  # connections open lazily, in each worker process

RETRY = {
    "bind": True,
    "autoretry_for": (StoreUnavailable, KafkaUnavailable),
    "retry_backoff": 1,
    "retry_backoff_max": int(_settings.store_retry_max_seconds),
    "retry_jitter": True,
    "max_retries": None,
}


def _persist(topic: str, wire_records: list[dict[str, Any]]) -> dict[str, int]:
    records = [Record.from_wire(w) for w in wire_records]
    outcome = _persister.persist(topic, records)
    for dl in outcome.dead:
        log.warning("dead letter %s (%s): %s", dl.record.coordinates, dl.stage, dl.reason)
    return {"stored": outcome.stored, "dead_letters": len(outcome.dead)}


@app.task(name=STORE_TASK[CUSTOMERS], **RETRY)
def store_customers(self, records: list[dict[str, Any]]) -> dict[str, int]:
    return _persist(CUSTOMERS, records)


@app.task(name=STORE_TASK[BOOKS], **RETRY)
def store_books(self, records: list[dict[str, Any]]) -> dict[str, int]:
    return _persist(BOOKS, records)


@app.task(name=STORE_TASK[ORDERS], **RETRY)
def store_orders(self, records: list[dict[str, Any]]) -> dict[str, int]:
    return _persist(ORDERS, records)
