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


@pytest.mark.parametrize("refused", ["sadd", "zadd", "hset"])
def test_an_order_written_halfway_is_written_whole_by_its_retry(mine, refused):
    """Redis does not undo what a script wrote before a command of it failed (here refused by
    an ACL, as a misconfigured user or a full memory would): the retry must still write the
    whole order, set and history included."""
    import redis

    own = mine.store("redis").url
    admin = redis.Redis.from_url(own)
    user, password = f"test-halfway-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"],
                      commands=["+@all", f"-{refused}"])  # fmt: skip
    partial = own.replace("redis://", f"redis://{user}:{password}@", 1)
    oid, cid = str(uuid.uuid4()), str(uuid.uuid4())
    order = {"id": oid, "customer_id": cid, "book_id": "b", "quantity": 1, "timestamp": 1}
    row = TABLE.by_name[ORDERS]
    try:
        with OrderStore(partial) as store, pytest.raises(Exception, match="can.t run this command"):
            write(store, row, record(ORDERS, order, 40))
        with OrderStore(own) as store, closing(Stores(mine)) as stores:
            write(store, row, record(ORDERS, order, 40))  # the task's retry
            assert stores.history(cid) == [oid]
            assert stores.orders([oid])[oid]["quantity"] == "1"
            assert admin.sismember("orders", oid)
    finally:
        admin.acl_deluser(user)
        admin.close()
