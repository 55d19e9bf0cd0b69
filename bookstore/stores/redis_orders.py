"""Orders in Redis: `order:{id}` hash + `customer:{customer_id}:orders` sorted set.

Why Redis: a customer's purchase history, newest first, in one call (ZREVRANGE). Each order is
written by one Lua script, atomically: its hash, its history entry and the `orders` set appear
together or not at all. Last write wins in Kafka order, as for customers and books: the hash
remembers the record it came from and only a later record replaces it, so rewriting the same order
changes nothing (idempotent) and a late redelivery never rolls it back. An order re-sent with
another `customer_id` moves from the old customer's history to the new one's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from pydantic import Field

from bookstore.errors import StoreUnavailable, Verdict, classify
from bookstore.namespace import Namespace, NamespaceError, option, url_path, with_url_path
from bookstore.records import Record
from bookstore.stores import Closing, StoreSettings

if TYPE_CHECKING:  # validation (pydantic) is the workers' part, not the readers'
    from bookstore.schemas import Order


class RedisSettings(StoreSettings, env_prefix="REDIS_"):
    # REDIS_URL: also where the generator keeps its registry of ids (bookstore.config)
    url: str = Field("redis://localhost:6379/0", repr=False)  # may hold a password

    @classmethod
    def unreachable(cls) -> RedisSettings:
        return cls(url="redis://127.0.0.1:1/0")


ALL_ORDERS = "orders"  # set of every order id: counts and checks without SCAN (also in WRITE_ORDER)
PROGRESS = "rebuild:progress"  # how far a rebuild of this database has read (bookstore.rebuild)


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


# ARGV: id, customer_id, book_id, quantity, timestamp (ISO), score (epoch seconds),
#       source timestamp, source partition, source offset
WRITE_ORDER = """
local key = 'order:' .. ARGV[1]
local history = 'customer:' .. ARGV[2] .. ':orders'
for _, k in ipairs({key, history}) do
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= (k == key and 'hash' or 'zset') then
    return redis.error_reply('WRONGTYPE key ' .. k .. ' holds a ' .. t)
  end
end
local held = redis.call('HMGET', key, 'customer_id', 'source_timestamp', 'source_partition',
                        'source_offset')
if held[2] then
  local t, p, o = tonumber(held[2]), tonumber(held[3]), tonumber(held[4])
  local nt, np, no = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  if t > nt or (t == nt and (p > np or (p == np and o >= no))) then
    return 0
  end
end
-- The hash, with the record it came from, is written last: a script stopped midway (Redis does
-- not undo a script's writes: a command refused, the server out of memory) leaves no record
-- position behind, so the task's retry writes the order again, whole.
redis.call('SADD', 'orders', ARGV[1])
if held[1] and held[1] ~= ARGV[2] then
  redis.call('ZREM', 'customer:' .. held[1] .. ':orders', ARGV[1])
end
redis.call('ZADD', history, ARGV[6], ARGV[1])
redis.call('HSET', key, 'customer_id', ARGV[2], 'book_id', ARGV[3], 'quantity', ARGV[4],
           'timestamp', ARGV[5], 'source_timestamp', ARGV[7], 'source_partition', ARGV[8],
           'source_offset', ARGV[9])
return 1
"""


# What a failure means (bookstore.errors): Redis error prefixes that say "the server cannot
# write now" rather than "this write is wrong".
_TRANSIENT = (
    "MISCONF",
    "OOM",
    "LOADING",
    "READONLY",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
    "CLUSTERDOWN",
)


class OrderStore(Closing):
    server = "Redis"
    configured_by = "REDIS_URL"
    settings_class = RedisSettings

    @staticmethod
    def classify(exc: BaseException) -> Verdict | None:
        """What a redis-py failure means, by its error prefix (None: not redis-py's). The
        generator's id registry (same server, REDIS_URL) is judged by it too."""
        if not isinstance(exc, redis.RedisError):
            return None
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
            return Verdict.TRANSIENT
        message = str(exc)
        if message.startswith(_TRANSIENT):
            return Verdict.TRANSIENT
        if message.startswith("WRONGTYPE"):
            return Verdict.RECORD  # a key of this record holds another type of value
        return Verdict.UNEXPLAINED

    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._write_order = self.redis.register_script(WRITE_ORDER)

    @classmethod
    def from_settings(cls, own: RedisSettings) -> OrderStore:
        return cls(own.url)

    @classmethod
    def in_namespace(cls, own: RedisSettings, namespace: Namespace) -> RedisSettings:
        """A namespace is a Redis database of its own: Redis numbers them (the namespace's
        `redis_db` option, its row's `NamespaceOption`: `--redis-db`)."""
        db = int(option(namespace, "redis", "redis_db"))
        live = url_path(own.url)
        if db == (int(live) if live.isdigit() else 0):
            raise NamespaceError(f"Redis database {db} is the live one (REDIS_URL)")
        return own.replace(url=with_url_path(own.url, str(db)))

    @classmethod
    def create_namespace(cls, live: RedisSettings, name: str) -> None:
        """Nothing: a Redis database exists as soon as it is numbered."""

    def close(self) -> None:
        self.redis.close()

    def write(self, batch: list[tuple[Order, Record]]) -> list[tuple[Record, str]]:
        """Write every order in one round trip; return those Redis refused for their own keys
        (a key holding another type of value)."""
        pipe = self.redis.pipeline(transaction=False)
        for order, record in batch:
            self._write_order(
                args=[
                    order.id,
                    order.customer_id,
                    order.book_id,
                    order.quantity,
                    order.iso_timestamp,
                    order.epoch_seconds,
                    *record.kafka_order,
                ],
                client=pipe,
            )
        try:
            results = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            if classify(exc, (OrderStore,)) is Verdict.TRANSIENT:
                raise StoreUnavailable(f"Redis cannot write now: {exc}") from exc
            raise
        refused = []
        for (_order, record), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                if classify(result, (OrderStore,)) is not Verdict.RECORD:
                    raise result
                refused.append((record, f"Redis refused it: {result}"))
        return refused

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

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        held = self.redis.smismember(ALL_ORDERS, ids) if ids else []
        return {i for i, hit in zip(ids, held, strict=True) if hit}

    def scan(self, chunk: int = 1000) -> Iterator[tuple[str, dict[str, str]]]:
        """Every order hash (`order:*`, found by SCAN, not through the `orders` set), with all
        its fields, source included; read in pipelined chunks."""
        for part in _chunks(self.redis.scan_iter(match=order_key("*"), count=chunk), chunk):
            pipe = self.redis.pipeline(transaction=False)
            for key in part:
                pipe.hgetall(key)
            for key, fields in zip(part, pipe.execute(), strict=True):
                if fields:
                    yield key.decode()[len(order_key("")) :], _text(fields)

    def histories(self, chunk: int = 1000) -> Iterator[tuple[str, list[tuple[str, float]]]]:
        """Every customer's history: (customer id, [(order id, score), ...])."""
        prefix, suffix = history_key("*").split("*")
        for part in _chunks(self.redis.scan_iter(match=history_key("*"), count=chunk), chunk):
            pipe = self.redis.pipeline(transaction=False)
            for key in part:
                pipe.zrange(key, 0, -1, withscores=True)
            for key, entries in zip(part, pipe.execute(), strict=True):
                cid = key.decode()[len(prefix) : -len(suffix)]
                yield cid, [(oid.decode(), score) for oid, score in entries]

    def set_members(self) -> set[str]:
        """The `orders` set, which counts and checks read instead of scanning."""
        return {i.decode() for i in self.redis.sscan_iter(ALL_ORDERS, count=1000)}

    @staticmethod
    def form(order: Order) -> list[Any]:
        """An order as `verify` compares it with what is stored (`entries`): its fields, its
        entry in its customer's history (score: epoch seconds), its place in the `orders` set."""
        cid, history = order.customer_id, [[order.customer_id, order.epoch_seconds]]
        return [cid, order.book_id, order.quantity, order.iso_timestamp, history, True]

    def entries(self) -> Iterator[tuple[str, Any, tuple[int, int, int] | None]]:
        """(id, form, source record) of every order hash, for `verify`, with the histories that
        name it and whether the `orders` set does; then the ids that a history or the set names
        without a hash. A hash this pipeline did not write has its raw fields as form."""
        histories: dict[str, list[list[Any]]] = defaultdict(list)
        for cid, entries in self.histories():
            for oid, score in entries:
                histories[oid].append([cid, score])
        members = self.set_members()
        hashes = set()
        for oid, f in self.scan():
            hashes.add(oid)
            try:
                form: Any = [
                    f["customer_id"],
                    f["book_id"],
                    int(f["quantity"]),
                    f["timestamp"],
                    histories.get(oid, []),
                    oid in members,
                ]
                source = (
                    int(f["source_timestamp"]),
                    int(f["source_partition"]),
                    int(f["source_offset"]),
                )
            except (KeyError, ValueError):
                yield oid, f, None
                continue
            yield oid, form, source
        for oid in sorted((histories.keys() | members) - hashes):
            stray = {"history": histories.get(oid, []), "in the orders set": oid in members}
            yield oid, stray, None

    def clear(self) -> None:
        """Remove every order, history, the `orders` set and the rebuild's progress (nothing
        else in the database)."""
        for pattern in (order_key("*"), history_key("*")):
            for part in _chunks(self.redis.scan_iter(match=pattern, count=1000), 1000):
                self.redis.delete(*part)
        self.redis.delete(ALL_ORDERS, PROGRESS)

    def progress(self) -> dict[str, int]:
        held = self.redis.get(PROGRESS)
        return json.loads(held) if held else {}

    def keep_progress(self, offsets: dict[str, int]) -> None:
        self.redis.set(PROGRESS, json.dumps(offsets))


def _chunks(items: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    part: list[bytes] = []
    for item in items:
        part.append(item)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def _text(fields: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in fields.items()}


def _stored(order_id: str, fields: dict[bytes, bytes]) -> StoredOrder:
    f = _text(fields)
    return StoredOrder(order_id, f["customer_id"], f["book_id"], int(f["quantity"]), f["timestamp"])
