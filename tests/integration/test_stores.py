"""Each store on its real server, held to one contract (every row of the entity table, and the
fourth-entity example store a newcomer would copy), then what is particular to some.

The contract: a batch written twice changes nothing; the latest record in Kafka order
(timestamp, partition, offset) wins whatever the delivery order, since a redelivery or a retry
can bring an older record after a newer one; `clear` empties it; its canonical form (`form` of a
record, `entries` of what is stored: what `verify` compares) agrees with what it wrote; a
namespace holds data of its own, or the store says it cannot name one. Writes go through the
stores' own batch writes, as the workers do. And a server that cannot be reached is an outage
(retried), never the record's fault.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

from bookstore.config import Settings
from bookstore.entities import BOOKS, CUSTOMERS, ENTITIES, ORDERS, Entity
from bookstore.errors import Verdict, classify
from bookstore.namespace import NamespaceError, create_namespace, namespace_settings
from bookstore.records import Record
from bookstore.schemas import parse
from bookstore.stores.mongo import BookStore
from bookstore.stores.redis_orders import OrderStore
from bookstore.verify import digest
from tests.integration.fourth_entity.reviews import REVIEWS
from tests.integration.pipeline import Namespace, Stores

NS = Namespace("bookstore_stores", redis_db=8)
ELSEWHERE = ("bookstore_stores_ns", 9)  # the contract's namespace: databases, Redis database

# One valid record per entity: version n of the entity with id `key`.
SAMPLES: dict[str, Callable[[str, int], dict[str, Any]]] = {
    CUSTOMERS: lambda key, n: {"id": key, "name": f"Ana {n}", "email": f"v{n}.{key}@example.com"},
    BOOKS: lambda key, n: {"id": key, "isbn": None, "title": f"Edição {n}", "authors": ["A"] * n},
    ORDERS: lambda key, n: {
        "id": key,
        "customer_id": str(uuid.UUID(int=n)),
        "book_id": f"b{n}",
        "quantity": n,
        "timestamp": 1_700_000 + n,
    },
    REVIEWS.name: lambda key, n: {"id": key, "book_id": f"vol{n}", "stars": 1 + n % 5},
}
ROWS = {**{e.name: e for e in ENTITIES}, REVIEWS.name: REVIEWS}
# Where each store's server is not, in its own settings (the example store: a missing folder)
UNREACHABLE: dict[str, dict[str, str]] = {
    CUSTOMERS: {"dsn": "postgresql://bookstore@127.0.0.1:1/nowhere"},
    BOOKS: {"uri": "mongodb://127.0.0.1:1"},
    ORDERS: {"url": "redis://127.0.0.1:1/0"},
    REVIEWS.name: {"db": "/nonexistent/reviews.sqlite"},
}


@pytest.fixture(scope="module")
def mine(settings):
    NS.reset(settings)
    return NS.settings(settings)


@pytest.fixture
def stores(mine) -> Iterator[Stores]:
    s = Stores(mine)
    yield s
    s.close()


@pytest.fixture(params=list(ROWS))
def row(request, monkeypatch, tmp_path) -> Entity:
    if request.param not in SAMPLES or request.param not in UNREACHABLE:
        pytest.fail(f"the entity {request.param!r} needs a sample record and an unreachable server")
    monkeypatch.setenv("REVIEWS_DB", str(tmp_path / "reviews.sqlite"))  # the example store's
    return ROWS[request.param]


@pytest.fixture
def here(mine, row) -> Settings:
    """`mine` holding the row's store settings too (the example store is outside the table)."""
    own = mine.store(row.queue, row.store_class().settings_class)
    return mine.replace(stores={**mine.stores, row.queue: own})


def record(topic: str, value: dict, offset: int, timestamp: int = 1_700_000_000_000) -> Record:
    return Record(topic, 0, offset, None, timestamp, json.dumps(value).encode())


def write(store, entity: Entity, *records: Record) -> None:
    """One batch, in this delivery order."""
    parsed = [(parse(entity.model_class(), r.value), r) for r in records]
    assert store.write(parsed) == []


def version(entity: Entity, key: str, n: int, offset: int, **kw: int) -> Record:
    return record(entity.name, SAMPLES[entity.name](key, n), offset, **kw)


def held(store, key: str) -> bytes | None:
    """The digest of the stored entry's canonical form, as `verify` compares it."""
    return next((digest(form) for k, form, _ in store.entries() if k == key), None)


def expected(store, entity: Entity, key: str, n: int) -> bytes:
    return digest(
        store.form(parse(entity.model_class(), json.dumps(SAMPLES[entity.name](key, n)).encode()))
    )


def test_a_batch_written_twice_changes_nothing(here, row):
    key = str(uuid.uuid4())
    with row.open_store(here) as store:
        before = store.count()
        write(store, row, version(row, key, 1, 10))
        write(store, row, version(row, key, 1, 10))
        assert store.count() == before + 1
        assert held(store, key) == expected(store, row, key, 1)


def test_the_latest_record_in_kafka_order_wins_whatever_the_delivery_order(here, row):
    key = str(uuid.uuid4())
    with row.open_store(here) as store:
        write(store, row, version(row, key, 2, 11))
        write(store, row, version(row, key, 1, 10))  # a late redelivery of the older record
        assert held(store, key) == expected(store, row, key, 2)
        write(store, row, version(row, key, 2, 11), version(row, key, 1, 10))  # one batch
        assert held(store, key) == expected(store, row, key, 2)
        write(store, row, version(row, key, 3, 5, timestamp=1_700_000_000_001))  # later time
        assert held(store, key) == expected(store, row, key, 3)


def test_clear_empties_it(here, row):
    with row.open_store(here) as store:
        write(store, row, version(row, str(uuid.uuid4()), 1, 10))
        store.clear()
        assert store.count() == 0 and list(store.entries()) == []


def test_an_unreachable_server_is_an_outage_never_the_records_fault(here, row):
    with row.open_store(here.with_store(row.queue, **UNREACHABLE[row.name])) as store:
        try:
            write(store, row, version(row, str(uuid.uuid4()), 1, 10))
        except Exception as exc:  # whatever the store raises, its verdict is what counts
            failure = exc
        else:
            pytest.fail("a write to an unreachable server succeeded")
    # the store's own translation of its driver's failures, then the policy's
    verdict = row.store_class().classify(failure) or classify(failure)
    assert verdict is Verdict.TRANSIENT, f"{type(failure).__name__}: {failure}"


def test_a_namespace_holds_its_own_data_or_the_store_says_it_has_none(here, row):
    name, redis_db = ELSEWHERE
    if not hasattr(row.store_class(), "in_namespace"):
        with pytest.raises(NamespaceError, match="cannot name a namespace"):
            namespace_settings(here, name, redis_db, [row.queue], ROWS.values())
        return
    there = namespace_settings(here, name, redis_db, [row.queue], ROWS.values())
    create_namespace(here, name, [row.queue], ROWS.values())
    key = str(uuid.uuid4())
    with row.open_store(here) as live, row.open_store(there) as other:
        other.clear()
        write(other, row, version(row, key, 1, 10))
        assert held(other, key) is not None and held(live, key) is None
        other.clear()


def test_a_book_stored_before_books_remembered_their_record_is_replaced(mine, stores):
    bid = f"vol-{uuid.uuid4().hex[:8]}"
    own = mine.store("mongo")
    client = pymongo.MongoClient(own.uri)
    client[own.db].books.insert_one({"_id": bid, "title": "old release", "authors": []})
    client.close()
    store = BookStore(own.uri, own.db)
    try:
        write(store, ROWS[BOOKS], record(BOOKS, {"id": bid, "title": "new", "authors": []}, 1))
        assert stores.books([bid])[bid]["title"] == "new"
    finally:
        store.close()


def test_an_order_moved_to_another_customer_leaves_no_stale_history(mine, stores):
    store = OrderStore(mine.store("redis").url)
    oid, alice, bob = (str(uuid.uuid4()) for _ in range(3))
    v1 = {"id": oid, "customer_id": alice, "book_id": "b", "quantity": 1, "timestamp": 1_700_000}
    v2 = {**v1, "customer_id": bob, "quantity": 2}
    try:
        write(store, ROWS[ORDERS], record(ORDERS, v1, 30))
        assert stores.history(alice) == [oid]
        write(store, ROWS[ORDERS], record(ORDERS, v2, 31))
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        write(store, ROWS[ORDERS], record(ORDERS, v1, 30))  # a late redelivery of the first version
        write(store, ROWS[ORDERS], record(ORDERS, v2, 31), record(ORDERS, v2, 31))  # and duplicates
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        fields = stores.orders([oid])[oid]
        assert (fields["customer_id"], fields["quantity"]) == (bob, "2")
    finally:
        store.close()
