"""What is particular to some stores, beyond the contract every store is held to
(tests/integration/test_store_contract.py)."""

from __future__ import annotations

import uuid
from contextlib import closing

import pymongo
import pytest

from bookstore.config import Settings
from bookstore.entities import BOOKS, ORDERS
from bookstore.stores.mongo import BookStore
from bookstore.stores.redis_orders import OrderStore
from tests.integration.pipeline import Stores
from tests.integration.test_store_contract import NS, record, write
from tests.support import TABLE


@pytest.fixture(scope="module")
def mine(settings: Settings) -> Settings:
    return NS.reset(settings)


def test_a_book_stored_before_books_remembered_their_record_is_replaced(mine):
    bid = f"vol-{uuid.uuid4().hex[:8]}"
    own = mine.store("mongo")
    client = pymongo.MongoClient(own.uri)
    client[own.db].books.insert_one({"_id": bid, "title": "old release", "authors": []})
    client.close()
    with BookStore(own.uri, own.db) as store, closing(Stores(mine)) as stores:
        row = TABLE.by_name[BOOKS]
        write(store, row, record(BOOKS, {"id": bid, "title": "new", "authors": []}, 1))
        assert stores.books([bid])[bid]["title"] == "new"


def test_an_order_moved_to_another_customer_leaves_no_stale_history(mine):
    oid, alice, bob = (str(uuid.uuid4()) for _ in range(3))
    v1 = {"id": oid, "customer_id": alice, "book_id": "b", "quantity": 1, "timestamp": 1}
    v2 = {**v1, "customer_id": bob, "quantity": 2}
    row = TABLE.by_name[ORDERS]
    with OrderStore(mine.store("redis").url) as store, closing(Stores(mine)) as stores:
        write(store, row, record(ORDERS, v1, 30))
        assert stores.history(alice) == [oid]
        write(store, row, record(ORDERS, v2, 31))
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        write(store, row, record(ORDERS, v1, 30))  # a late redelivery of the first version
        write(store, row, record(ORDERS, v2, 31), record(ORDERS, v2, 31))  # and duplicates
        assert (stores.history(alice), stores.history(bob)) == ([], [oid])
        fields = stores.orders([oid])[oid]
        assert (fields["customer_id"], fields["quantity"]) == (bob, "2")
