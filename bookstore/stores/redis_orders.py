"""Orders in Redis: `order:{id}` hash + `customer:{customer_id}:orders` sorted set.

Why Redis: a customer's purchase history, newest first, in one call (ZREVRANGE). Each batch is
written in one MULTI/EXEC, so an order's hash and its history entry appear together or not at all;
rewriting the same order leaves the same hash and the same score (idempotent).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from bookstore.records import Record
from bookstore.schemas import Order
from bookstore.stores import StoreUnavailable

ALL_ORDERS = "orders"  # set of every order id: counts and consistency checks without SCAN


def order_key(order_id: str) -> str:
    return f"order:{order_id}"


def history_key(customer_id: str) -> str:
    return f"customer:{customer_id}:orders"


@dataclass(frozen=True)
class StoredOrder:
    id: str
    customer_id: str
    book_id: str
    quantity: int
    timestamp: str


class OrderStore:
    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    def close(self) -> None:
        self.redis.close()

    def upsert(self, batch: list[tuple[Order, Record]]) -> list[tuple[Record, str]]:
        pipe = self.redis.pipeline(transaction=True)
        for order, _record in batch:
            pipe.hset(
                order_key(order.id),
                mapping={
                    "customer_id": order.customer_id,
                    "book_id": order.book_id,
                    "quantity": order.quantity,
                    "timestamp": order.iso_timestamp,
                },
            )
            pipe.zadd(history_key(order.customer_id), {order.id: order.epoch_seconds})
            pipe.sadd(ALL_ORDERS, order.id)
        try:
            pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis unreachable: {exc}") from exc
        except redis.ResponseError as exc:  # e.g. MISCONF (disk full): retrying later can fix it
            raise StoreUnavailable(f"Redis refused the write: {exc}") from exc
        return []

    def history(self, customer_id: str, limit: int = 100) -> list[StoredOrder]:
        """The customer's orders, newest first."""
        ids = [i.decode() for i in self.redis.zrevrange(history_key(customer_id), 0, limit - 1)]
        pipe = self.redis.pipeline(transaction=False)
        for order_id in ids:
            pipe.hgetall(order_key(order_id))
        return [_stored(order_id, h) for order_id, h in zip(ids, pipe.execute(), strict=True) if h]

    def references(self, chunk: int = 1000) -> Iterator[tuple[str, str, str]]:
        """(order id, customer id, book id) of every stored order, read in pipelined chunks."""
        ids = [i.decode() for i in self.redis.sscan_iter(ALL_ORDERS, count=chunk)]
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            pipe = self.redis.pipeline(transaction=False)
            for order_id in part:
                pipe.hmget(order_key(order_id), "customer_id", "book_id")
            for order_id, (cid, bid) in zip(part, pipe.execute(), strict=True):
                if cid is not None and bid is not None:
                    yield order_id, cid.decode(), bid.decode()

    def count(self) -> int:
        return self.redis.scard(ALL_ORDERS)


def _stored(order_id: str, fields: dict[bytes, bytes]) -> StoredOrder:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return StoredOrder(order_id, f["customer_id"], f["book_id"], int(f["quantity"]), f["timestamp"])
