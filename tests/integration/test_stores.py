"""Every store of the entity table held to the one contract (tests/integration/store_contract.py),
then what is particular to some."""

from __future__ import annotations

import uuid
from contextlib import closing

import pymongo

from bookstore.entities import BOOKS, CUSTOMERS, ORDERS
from bookstore.stores.mongo import BookStore
from bookstore.stores.redis_orders import OrderStore
from tests.integration.pipeline import Stores
from tests.integration.store_contract import StoreContract, record, write
from tests.support import TABLE


class TestCustomerStore(StoreContract):
    entity = TABLE.by_name[CUSTOMERS]
    unreachable = {"dsn": "postgresql://bookstore@127.0.0.1:1/nowhere"}

    @staticmethod
    def sample(key: str, n: int) -> dict:
        return {"id": key, "name": f"Ana {n}", "email": f"v{n}.{key}@example.com"}


class TestBookStore(StoreContract):
    entity = TABLE.by_name[BOOKS]
    unreachable = {"uri": "mongodb://127.0.0.1:1"}

    @staticmethod
    def sample(key: str, n: int) -> dict:
        return {"id": key, "isbn": None, "title": f"Edição {n}", "authors": ["A"] * n}

    def test_a_book_stored_before_books_remembered_their_record_is_replaced(self, mine):
        bid = f"vol-{uuid.uuid4().hex[:8]}"
        own = mine.store("mongo")
        client = pymongo.MongoClient(own.uri)
        client[own.db].books.insert_one({"_id": bid, "title": "old release", "authors": []})
        client.close()
        with BookStore(own.uri, own.db) as store, closing(Stores(mine)) as stores:
            write(store, self.entity, record(BOOKS, {"id": bid, "title": "new", "authors": []}, 1))
            assert stores.books([bid])[bid]["title"] == "new"


class TestOrderStore(StoreContract):
    entity = TABLE.by_name[ORDERS]
    unreachable = {"url": "redis://127.0.0.1:1/0"}

    @staticmethod
    def sample(key: str, n: int) -> dict:
        return {
            "id": key,
            "customer_id": str(uuid.UUID(int=n)),
            "book_id": f"b{n}",
            "quantity": n,
            "timestamp": 1_700_000 + n,
        }

    def test_an_order_moved_to_another_customer_leaves_no_stale_history(self, mine):
        oid, alice, bob = (str(uuid.uuid4()) for _ in range(3))
        v1 = {"id": oid, "customer_id": alice, "book_id": "b", "quantity": 1, "timestamp": 1}
        v2 = {**v1, "customer_id": bob, "quantity": 2}
        row = self.entity
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


def test_every_row_of_the_entity_table_is_held_to_the_contract():
    held = {c.entity.name for c in StoreContract.__subclasses__()}
    assert set(TABLE.names) <= held, f"no StoreContract subclass for {set(TABLE.names) - held}"
