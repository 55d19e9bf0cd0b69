"""The contract every store is held to, on its real server: every row of the entity table this
process runs (the built-in ones, and any an installed package declares), with nothing written
per store. What a row's store must bring for it is its own: its model's `example(key, n)` and
its settings' `unreachable()` (bookstore.stores.Store).

The contract: a batch written twice changes nothing; the latest record in Kafka order
(timestamp, partition, offset) wins whatever the delivery order, since a redelivery or a retry
can bring an older record after a newer one; `clear` empties it; it keeps a rebuild's progress
with its data; its canonical form (`form` of a record, `entries` of what is stored: what
`verify` compares) agrees with what it wrote; a namespace holds data of its own, or the row says
the store cannot name one. Writes go through the stores' own batch writes, as the workers do.
And a server that cannot be reached is an outage (retried), never the record's fault, as
production judges it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from bookstore.config import Settings
from bookstore.entities import Entity, EntityTable, load_table
from bookstore.errors import Verdict, classify
from bookstore.namespace import Namespace, NamespaceError
from bookstore.records import Record
from bookstore.schemas import parse
from bookstore.verify import digest

NS = Namespace("bookstore_stores", {"redis_db": 8})
ELSEWHERE = Namespace("bookstore_stores_ns", {"redis_db": 9})  # the contract's namespace


def record(topic: str, value: dict, offset: int, timestamp: int = 1_700_000_000_000) -> Record:
    return Record(topic, 0, offset, None, timestamp, json.dumps(value).encode())


def write(store: Any, entity: Entity, *records: Record) -> None:
    """One batch, in this delivery order, as a worker writes it."""
    parsed = [(parse(entity.model_class(), r.value), r) for r in records]
    assert store.write(parsed) == []


@pytest.fixture(scope="module")
def mine(settings: Settings) -> Settings:
    return NS.reset(settings)


@pytest.fixture(params=load_table().rows, ids=lambda row: row.name)
def entity(request) -> Entity:
    return request.param


@pytest.fixture
def here(mine: Settings, entity: Entity) -> Settings:
    """The contract's namespace running this row's entity alone (a row outside the built-in
    table too)."""
    return mine.running(EntityTable((entity,)))


def version(entity: Entity, key: str, n: int, offset: int, **kw: int) -> Record:
    return record(entity.name, entity.model_class().example(key, n), offset, **kw)


def held(store: Any, entity: Entity, key: str) -> bytes | bool | None:
    """What `verify` would compare of the stored entry (the digest of its canonical form), or
    for a store without one whether it holds the key (None: it does not)."""
    if not entity.verifiable:
        return True if key in store.existing_ids([key]) else None
    return next((digest(form) for k, form, _ in store.entries() if k == key), None)


def expected(store: Any, entity: Entity, key: str, n: int) -> bytes | bool:
    if not entity.verifiable:
        return True
    model = entity.model_class()
    example = json.dumps(model.example(key, n)).encode()
    return digest(store.form(parse(model, example)))


def test_a_batch_written_twice_changes_nothing(here, entity):
    key = str(uuid.uuid4())
    with entity.open_store(here) as store:
        before = store.count()
        write(store, entity, version(entity, key, 1, 10))
        write(store, entity, version(entity, key, 1, 10))
        assert store.count() == before + 1
        assert store.existing_ids([key, str(uuid.uuid4())]) == {key}
        assert held(store, entity, key) == expected(store, entity, key, 1)


def test_the_latest_record_in_kafka_order_wins_whatever_the_delivery_order(here, entity):
    key = str(uuid.uuid4())

    def v(n: int, offset: int, **kw: int) -> Record:
        return version(entity, key, n, offset, **kw)

    with entity.open_store(here) as store:
        write(store, entity, v(2, 11))
        write(store, entity, v(1, 10))  # a late redelivery of the older record
        assert held(store, entity, key) == expected(store, entity, key, 2)
        write(store, entity, v(2, 11), v(1, 10))  # in one batch
        assert held(store, entity, key) == expected(store, entity, key, 2)
        write(store, entity, v(3, 5, timestamp=1_700_000_000_001))  # a later time
        assert held(store, entity, key) == expected(store, entity, key, 3)


def test_clear_empties_it(here, entity):
    with entity.open_store(here) as store:
        write(store, entity, version(entity, str(uuid.uuid4()), 1, 10))
        store.clear()
        assert store.count() == 0
        if entity.verifiable:
            assert list(store.entries()) == []


def test_it_keeps_a_rebuilds_progress_with_its_data_and_clear_forgets_it(here, entity):
    """Where a rebuild stands lives in the store it fills (bookstore.rebuild): a store emptied,
    dropped or never built says it has read nothing."""
    progress = {"test.topic:0": 12, "test.topic:1": 3}
    with entity.open_store(here) as store:
        store.clear()
        assert store.progress() == {}
        store.keep_progress(progress)
        store.keep_progress({**progress, "test.topic:1": 7})  # replaced whole
    with entity.open_store(here) as reopened:
        assert reopened.progress() == {**progress, "test.topic:1": 7}
        reopened.clear()
        assert reopened.progress() == {}


def test_an_unreachable_server_is_an_outage_never_the_records_fault(here, entity):
    nowhere = entity.store_class().settings_class.unreachable()
    with entity.open_store(here.with_store(entity.queue, **nowhere.model_dump())) as store:
        try:
            write(store, entity, version(entity, str(uuid.uuid4()), 1, 10))
        except Exception as exc:  # whatever the store raises, its verdict is what counts
            failure = exc
        else:
            pytest.fail("a write to an unreachable server succeeded")
    # as production judges it: the table's stores, then the policy's own rules
    verdict = classify(failure, here.entities.loaded_stores())
    assert verdict is Verdict.TRANSIENT, f"{type(failure).__name__}: {failure}"


def test_a_namespace_holds_its_own_data_or_the_row_says_it_has_none(here, entity):
    if not entity.namespaced:
        with pytest.raises(NamespaceError, match="cannot name a namespace"):
            ELSEWHERE.settings(here, [entity.queue])
        return
    ELSEWHERE.create(here, [entity.queue])
    there = ELSEWHERE.settings(here, [entity.queue])
    key = str(uuid.uuid4())
    with entity.open_store(here) as live, entity.open_store(there) as other:
        other.clear()
        write(other, entity, version(entity, key, 1, 10))
        assert held(other, entity, key) is not None and held(live, entity, key) is None
        other.clear()
