"""Each store on its real server: last write wins in Kafka order, whatever the delivery order.

A redelivery or a retry can bring an older record after a newer one; the stores must keep the
entity of the latest record in Kafka order (timestamp, partition, offset), and a record written
twice must change nothing. Writes go through the stores' own batch writes, as the workers do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pymongo
import pytest

from bookstore.records import Record
from bookstore.schemas import parse
from bookstore.stores.mongo import BookStore
from bookstore.stores.postgres import CustomerStore
from bookstore.stores.redis_orders import OrderStore
from tests.integration.pipeline import Namespace, Stores
from tests.support import BOOKS, CUSTOMERS, ORDERS, TOPICS

NS = Namespace("bookstore_stores", redis_db=8)


@pytest.fixture(scope="module")
def mine(settings):
    NS.reset(settings)
    return NS.settings(settings)


@pytest.fixture
def stores(mine) -> Iterator[Stores]:
    s = Stores(mine)
    yield s
    s.close()


def record(topic: str, value: dict, offset: int, timestamp: int = 1_700_000_000_000) -> Record:
    return Record(topic, 0, offset, None, timestamp, json.dumps(value).encode())


def write(store, *records: Record) -> None:
    """One batch, in this delivery order."""
    parsed = [(parse(TOPICS.entity(r.topic).model_class(), r.value), r) for r in records]
    assert store.write(parsed) == []


def test_customers_keep_the_latest_record_whatever_the_delivery_order(mine, stores):
    store = CustomerStore(mine.postgres_dsn)
    cid = str(uuid.uuid4())
    v1 = {"id": cid, "name": "Ana", "email": f"{cid}@example.com"}
    v2 = {**v1, "name": "Ana Maria", "email": f"new.{cid}@example.com"}
    try:
        write(store, record(CUSTOMERS, v2, 11))
        write(store, record(CUSTOMERS, v1, 10))  # a late redelivery of the older record
        assert stores.customers([cid]) == {cid: v2}
        write(store, record(CUSTOMERS, v1, 10), record(CUSTOMERS, v2, 11))  # both, once more
        assert stores.customers([cid]) == {cid: v2}
    finally:
        store.close()


def test_books_keep_the_latest_record_whatever_the_delivery_order(mine, stores):
    store = BookStore(mine.mongo_uri, mine.mongo_db)
    bid = f"vol-{uuid.uuid4().hex[:8]}"
    v1 = {"id": bid, "isbn": None, "title": "Primeira", "authors": ["A"], "publishedDate": "2004"}
    v2 = {**v1, "title": "Segunda edição", "authors": ["A", "B"]}
    try:
        write(store, record(BOOKS, v2, 21))
        write(store, record(BOOKS, v1, 20))  # older: must not roll the book back
        assert stores.books([bid])[bid]["title"] == "Segunda edição"
        write(store, record(BOOKS, v2, 21), record(BOOKS, v1, 20))  # one batch, out of order
        assert stores.books([bid])[bid]["authors"] == ["A", "B"]
        v3 = {**v1, "title": "Terceira"}
        write(store, record(BOOKS, v3, 5, timestamp=1_700_000_000_001))  # a later timestamp wins
        assert stores.books([bid])[bid]["title"] == "Terceira"
    finally:
        store.close()


def test_a_book_stored_before_books_remembered_their_record_is_replaced(mine, stores):
    bid = f"vol-{uuid.uuid4().hex[:8]}"
    client = pymongo.MongoClient(mine.mongo_uri)
    client[mine.mongo_db].books.insert_one({"_id": bid, "title": "old release", "authors": []})
    client.close()
    store = BookStore(mine.mongo_uri, mine.mongo_db)
    try:
        write(store, record(BOOKS, {"id": bid, "title": "new", "authors": []}, 1))
        assert stores.books([bid])[bid]["title"] == "new"
    finally:
        store.close()


def test_an_order_moved_to_another_customer_leaves_no_stale_history(mine, stores):
    store = OrderStore(mine.redis_url)
    oid, alice, bob = (str(uuid.uuid4()) for _ in range(3))
    v1 = {"id": oid, "customer_id": alice, "book_id": "b", "quantity": 1, "timestamp": 1_700_000}
    v2 = {**v1, "customer_id": bob, "quantity": 2}
    try:
        write(store, record(ORDERS, v1, 30))
        assert stores.history(alice) == [oid]
        write(store, record(ORDERS, v2, 31))
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        write(store, record(ORDERS, v1, 30))  # a late redelivery of the first version
        write(store, record(ORDERS, v2, 31), record(ORDERS, v2, 31))  # and duplicates
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        held = stores.orders([oid])[oid]
        assert (held["customer_id"], held["quantity"]) == (bob, "2")
    finally:
        store.close()
