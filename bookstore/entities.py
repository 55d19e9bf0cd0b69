"""The entity table: each entity's Kafka topic, the schema of its records, the Celery queue
that persists it, and its store. Celery's routes and queues, the persistence tasks (named in the
Celery edge, bookstore/broker.py), the bridge, the topics' configuration, validation, `stats`,
`rebuild` and `verify` derive from it.

An entity's name is its topic's name; in Kafka the topic is called KAFKA_TOPIC_PREFIX + name
(`Topics`), so that a second deployment, or the test suite, shares one Kafka without sharing data.

An entity is added by a row here (`BUILT_IN`), or by an installed package declaring one (an
entry point in the group `bookstore.entities` whose object is an `Entity`): docs/extending.md.
No table is built at import: `load_table()` builds one when a process loads its
settings (bookstore.config.load_settings), and it travels in them (`settings.entities`).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bookstore.config import Settings
    from bookstore.stores import Store

CUSTOMERS = "customers"
BOOKS = "books"
ORDERS = "orders"
DEAD_LETTERS = "dead-letters"


class TableError(ValueError):
    """A row that contradicts the table or its own store (named in the message)."""


@dataclass(frozen=True)
class NamespaceOption:
    """Something a store's namespace needs besides its name (the Redis database: Redis numbers
    them), offered by `rebuild --into` and `verify --namespace` as `--NAME` (`_` as `-`) and
    handed to the store's `in_namespace` in `Namespace.options`."""

    name: str
    help: str
    type: type = int

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class StoreSpec:
    """A store the pipeline writes, as `rebuild`, `verify` and namespaces see it: an entity's
    (the latest valid record per key of its topic) or the audit log (every record of every
    entity topic, raw). What it can do besides writing, counting and clearing is declared here
    and checked against its class when a process opens stores (`check`)."""

    name: str  # its Celery queue's name; the store's name in `rebuild --store` and `verify`
    path: str  # "module:Class" of its `Store`, imported when first used (`--help` loads none)
    entities: tuple[str, ...]  # the entities whose topics it holds
    every_record: bool = False  # every record as received (audit), not the latest per key
    namespaced: bool = True  # `in_namespace` and `create_namespace`: `rebuild --into`
    verifiable: bool = True  # a canonical form, `form` and `entries`: `verify`
    namespace_options: tuple[NamespaceOption, ...] = ()

    def store_class(self) -> Any:
        return _load(self.path)

    def open(self, settings: Settings) -> Store:
        """The store, on its own settings within `settings` (a namespace's, if moved)."""
        cls = self.store_class()
        return cls.from_settings(settings.store(self.name, cls.settings_class))

    def check(self) -> None:
        """TableError when its class lacks what every store has (bookstore.stores.Store), or
        what its row claims for it."""
        cls = self.store_class()
        required = [*BASE, *(() if self.every_record else ("existing_ids",))]
        missing = [m for m in required if not hasattr(cls, m)]
        if missing:
            raise TableError(
                f"entity table: the store {self.name!r} ({self.path}) has no {', '.join(missing)}"
            )
        claims = {
            "namespaced": ("in_namespace", "create_namespace") if self.namespaced else (),
            "verifiable": ("entries",) if self.every_record else ("form", "entries"),
        }
        for claim, needed in claims.items():
            missing = [m for m in needed if not hasattr(cls, m)]
            if missing and getattr(self, claim):
                raise TableError(
                    f"entity table: the store {self.name!r} ({self.path}) has no "
                    f"{', '.join(missing)}, but its row says {claim}=True: implement them, or "
                    f"declare {claim}=False"
                )


# What every store class has (bookstore.stores.Store); an entity's store also `existing_ids`.
BASE = (
    "server",
    "configured_by",
    "settings_class",
    "from_settings",
    "classify",
    "write",
    "count",
    "clear",
    "progress",
    "keep_progress",
    "close",
)


@dataclass(frozen=True)
class Entity:
    name: str  # also its topic's name in Kafka, after KAFKA_TOPIC_PREFIX
    queue: str  # the Celery queue of its store; also the store's name in `rebuild`/`verify`
    store: str  # "module:Class" of its `Store`, imported when first used (`--help` loads none)
    model: str  # "module:Class" of the pydantic model its records must match
    # Entities (the latest record per key is the truth) are compacted when TOPIC_COMPACTION is
    # on, kept whole otherwise; events (orders) are kept whole for ORDERS_RETENTION_MS.
    compactable: bool = True
    # What its store can do besides writing (StoreSpec): declared here, checked against the
    # class when a process opens stores.
    namespaced: bool = True
    verifiable: bool = True
    namespace_options: tuple[NamespaceOption, ...] = ()

    @property
    def spec(self) -> StoreSpec:
        return StoreSpec(
            self.queue,
            self.store,
            (self.name,),
            namespaced=self.namespaced,
            verifiable=self.verifiable,
            namespace_options=self.namespace_options,
        )

    def store_class(self) -> Any:
        return _load(self.store)

    def model_class(self) -> Any:
        return _load(self.model)

    def open_store(self, settings: Settings) -> Store:
        """Its store, on the store's own settings within `settings` (a namespace's, if moved)."""
        return self.spec.open(settings)


@cache
def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


GROUP = "bookstore.entities"


def _installed() -> tuple[Entity, ...]:
    """Rows declared by installed packages (entry points of the group `bookstore.entities`).

    importlib.metadata costs the CLI's `--help` ~50-80 ms to import, so it is imported only when
    some package's entry_points.txt on sys.path names the group."""
    if not any(_declares_group(entry) for entry in sys.path):
        return ()
    from importlib.metadata import entry_points

    rows = tuple(point.load() for point in entry_points(group=GROUP))
    for row in rows:
        if not isinstance(row, Entity):
            raise TypeError(f"entry point {GROUP} gave {row!r}, not an Entity")
    return rows


def _declares_group(path_entry: str) -> bool:
    try:
        folders = [e.path for e in os.scandir(path_entry or ".") if e.name.endswith("-info")]
    except OSError:  # not a folder (a zip archive: rows come from installed folders only)
        return False
    for folder in folders:
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
                if f"[{GROUP}]" in f.read():
                    return True
        except OSError:
            continue
    return False


# The built-in rows; `load_table()` adds the installed packages' rows to them.
BUILT_IN: tuple[Entity, ...] = (
    Entity(
        CUSTOMERS,
        "postgres",
        "bookstore.stores.postgres:CustomerStore",
        "bookstore.schemas:Customer",
    ),
    Entity(
        BOOKS,
        "mongo",
        "bookstore.stores.mongo:BookStore",
        "bookstore.schemas:Book",
    ),
    Entity(
        ORDERS,
        "redis",
        "bookstore.stores.redis_orders:OrderStore",
        "bookstore.schemas:Order",
        compactable=False,
        namespace_options=(
            NamespaceOption("redis_db", "the namespace's Redis database (Redis numbers them)"),
        ),
    ),
)
AUDIT_QUEUE = "audit"
AUDIT_STORE = "bookstore.stores.audit:AuditStore"
GENERATE_QUEUE = "generate"
PARKED_QUEUE = "parked"  # tasks that must not run again until an operator requeues them


@dataclass(frozen=True)
class EntityTable:
    """The entities one process runs: built by `load_table()` (bookstore.config.load_settings
    puts it in the `Settings` every module receives) and passed on, never a global. Two rows
    sharing a topic or a queue would silently route one entity's records into the other's
    store: the table refuses them."""

    rows: tuple[Entity, ...] = BUILT_IN

    def __post_init__(self) -> None:
        taken = {
            "name": {DEAD_LETTERS},
            "queue": {AUDIT_QUEUE, GENERATE_QUEUE, PARKED_QUEUE},
        }
        for row in self.rows:
            for kind, names in taken.items():
                name = getattr(row, kind)
                if name in names:
                    raise ValueError(f"entity table: the {kind} {name!r} of {row} is already taken")
                names.add(name)

    def __iter__(self) -> Iterator[Entity]:
        return iter(self.rows)

    @cached_property
    def by_name(self) -> dict[str, Entity]:
        return {e.name: e for e in self.rows}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    @property
    def store_queues(self) -> tuple[str, ...]:
        """Every entity's store, by the name of its Celery queue."""
        return tuple(e.queue for e in self.rows)

    @property
    def bridge_queues(self) -> tuple[str, ...]:
        """The queues the bridge publishes to."""
        return (*self.store_queues, AUDIT_QUEUE)

    @property
    def celery_queues(self) -> tuple[str, ...]:
        return (*self.bridge_queues, GENERATE_QUEUE)

    @cached_property
    def stores(self) -> tuple[StoreSpec, ...]:
        """Every store the pipeline writes: each entity's, then the audit log."""
        audit = StoreSpec(AUDIT_QUEUE, AUDIT_STORE, self.names, every_record=True)
        return (*(e.spec for e in self.rows), audit)

    def store(self, name: str) -> StoreSpec:
        """The store named `name` (its queue's name); KeyError if none is."""
        for spec in self.stores:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def loaded_stores(self) -> tuple[Any, ...]:
        """The store classes of the table whose modules this process has imported: they say what
        their drivers' failures mean (bookstore.errors.classify). Only a loaded store's driver
        can have raised a failure, so none is imported to judge one (the CLI's `--help`, beat
        and the bridge load no driver)."""
        return tuple(
            s.store_class() for s in self.stores if s.path.partition(":")[0] in sys.modules
        )

    def of_store(self, store: str) -> Entity:
        """The entity whose store is named `store` (its queue); KeyError if none is."""
        for entity in self.rows:
            if entity.queue == store:
                return entity
        raise KeyError(store)


def load_table() -> EntityTable:
    """The built-in rows and those of the installed packages."""
    return EntityTable((*BUILT_IN, *_installed()))


@dataclass(frozen=True)
class Topics:
    """The Kafka topics of one deployment: KAFKA_TOPIC_PREFIX + each entity's name, and the
    dead letters'. Records carry these names (the audit log, dead-letter origins)."""

    prefix: str = ""
    table: EntityTable = EntityTable()

    def of(self, name: str) -> str:
        """The topic of an entity (or of the dead letters), by name."""
        return self.prefix + name

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(self.of(name) for name in self.table.names)

    @property
    def dead_letters(self) -> str:
        return self.of(DEAD_LETTERS)

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.entities, self.dead_letters)

    def entity(self, topic: str) -> Entity:
        """The entity whose records `topic` holds (KeyError: not an entity topic of ours)."""
        if not topic.startswith(self.prefix):
            raise KeyError(topic)
        return self.table.by_name[topic[len(self.prefix) :]]


def topics(settings: Settings) -> Topics:
    return Topics(settings.kafka_topic_prefix, settings.entities)


@contextmanager
def open_stores(settings: Settings, names: Iterable[str] | None = None) -> Iterator[dict]:
    """entity name -> its store (every entity's by default), each closed when the block ends
    (however it ends)."""
    table = settings.entities
    with ExitStack() as stack:
        yield {
            n: stack.enter_context(table.by_name[n].open_store(settings))
            for n in (table.names if names is None else names)
        }
