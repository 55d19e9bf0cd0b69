"""The entity table: each entity's Kafka topic, the Celery queue and task that persist it, and its
store. Celery's routes and queues, the persistence tasks, the bridge, `rebuild` and `verify`
derive from it; adding an entity starts with a row here (README, "Add an entity").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

CUSTOMERS = "customers"
BOOKS = "books"
ORDERS = "orders"
DEAD_LETTERS = "dead-letters"


@dataclass(frozen=True)
class Entity:
    topic: str
    queue: str  # the Celery queue of its store; also the store's name in `rebuild`/`verify`
    task: str  # its persistence task; the bridge sends by name, without importing the tasks
    store: str  # "module:Class" of its store, imported when first used (`--help` loads no driver)

    def store_class(self) -> Any:
        module, _, name = self.store.partition(":")
        return getattr(importlib.import_module(module), name)


ENTITIES = (
    Entity(
        CUSTOMERS,
        "postgres",
        "tasks.persist.store_customers",
        "bookstore.stores.postgres:CustomerStore",
    ),
    Entity(BOOKS, "mongo", "tasks.persist.store_books", "bookstore.stores.mongo:BookStore"),
    Entity(
        ORDERS, "redis", "tasks.persist.store_orders", "bookstore.stores.redis_orders:OrderStore"
    ),
)
BY_TOPIC = {e.topic: e for e in ENTITIES}

ENTITY_TOPICS = tuple(e.topic for e in ENTITIES)
ALL_TOPICS = (*ENTITY_TOPICS, DEAD_LETTERS)

STORE_QUEUE = {e.topic: e.queue for e in ENTITIES}  # topic -> Celery queue of its store
STORE_TASK = {e.topic: e.task for e in ENTITIES}  # topic -> name of its persistence task
AUDIT_QUEUE = "audit"
AUDIT_TASK = "tasks.audit.record_messages"
GENERATE_QUEUE = "generate"
CELERY_QUEUES = (*STORE_QUEUE.values(), AUDIT_QUEUE, GENERATE_QUEUE)
PARKED_QUEUE = "parked"  # tasks that must not run again until an operator requeues them
