"""Publish generated customers, books and orders to Kafka (shared by beat tasks and the CLI).

Every id is added to a Redis set only after Kafka confirmed its message, and orders draw their
customer and book from those sets: an order never names an entity that was not really
published, and the sets outlive any generator process.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from bookstore import entities
from bookstore.config import Settings
from bookstore.errors import Unavailable, Verdict
from bookstore.kafka import send_confirmed
from bookstore.sources.fake import fake_book, fake_customer, make_faker
from bookstore.sources.google_books import GoogleBooks
from bookstore.stores.redis_orders import OrderStore
from bookstore.topic_config import ensure_topics

log = logging.getLogger(__name__)

CUSTOMER_IDS = "generator:customer_ids"
BOOK_IDS = "generator:book_ids"
SCHEMA_VERSION = b"1"
CHUNK = 100  # messages per confirmed send: bounded memory and a moving progress bar

Progress = Callable[[str, int], None]  # (entity, messages just confirmed)


@dataclass
class Counts:
    customers: int = 0
    books_google: int = 0
    books_faker: int = 0
    orders: int = 0


def encode(entity: dict) -> bytes:
    return json.dumps(entity, separators=(",", ":"), ensure_ascii=False).encode()


def _headers(source: str) -> list[tuple[str, bytes]]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [
        ("source", source.encode()),
        ("schema-version", SCHEMA_VERSION),
        ("produced-at", now.encode()),
    ]


@contextmanager
def _registry() -> Iterator[None]:
    """The id registry lives on the orders store's server (REDIS_URL), so its failures mean what
    that store says Redis's mean: an outage becomes Unavailable (retried by the task, one line
    and exit 4 from the CLI), the rest stays as raised."""
    try:
        yield
    except redis.RedisError as exc:
        if OrderStore.classify(exc) is Verdict.TRANSIENT:
            raise Unavailable(f"Redis (REDIS_URL, the id registry): {exc}") from exc
        raise


def _chunks(n: int) -> list[int]:
    return [min(CHUNK, n - i) for i in range(0, max(n, 0), CHUNK)]


class Generator:
    """One per process (holds the Faker, the Google session and the run's published books)."""

    def __init__(
        self,
        settings: Settings,
        redis_client: redis.Redis | None = None,
        google: GoogleBooks | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis_client or redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, socket_timeout=30
        )
        self.fake = make_faker(settings.faker_locale)
        self.google = google or GoogleBooks(settings)
        self.published_books: set[str] = set()  # a volume is published once per run
        self._ready = False

    def prepare(self) -> None:
        """Fail fast if Kafka or Redis is unreachable; create the topics (once per process)."""
        if self._ready:
            return
        ensure_topics(self.settings)
        with _registry():
            self.redis.ping()
        self._ready = True

    def _publish(self, entity: str, made: list[tuple[dict, str]], registry: str | None) -> None:
        send_confirmed(
            self.settings,
            entities.topics(self.settings).of(entity),
            [(e["id"].encode(), encode(e), _headers(source)) for e, source in made],
        )
        if registry:  # only now: the ids are durably in Kafka
            with _registry():
                self.redis.sadd(registry, *(e["id"] for e, _ in made))

    def customers(self, n: int, progress: Progress | None = None) -> int:
        self.prepare()
        done = 0
        for size in _chunks(n):
            batch = [(fake_customer(self.fake), "faker") for _ in range(size)]
            self._publish(entities.CUSTOMERS, batch, CUSTOMER_IDS)
            done += size
            if progress:
                progress(entities.CUSTOMERS, size)
        return done

    def books(self, n: int, progress: Progress | None = None) -> tuple[int, int]:
        """Publish n books, from Google when it answers, topped up with Faker. -> (google, faker)"""
        self.prepare()
        google = faker = 0
        for size in _chunks(n):
            found = self.google.fetch_new(size, exclude=self.published_books)
            batch = [(b, "google") for b in found]
            batch += [(fake_book(self.fake), "faker") for _ in range(size - len(found))]
            self._publish(entities.BOOKS, batch, BOOK_IDS)
            self.published_books.update(b["id"] for b in found)
            google, faker = google + len(found), faker + size - len(found)
            if progress:
                progress(entities.BOOKS, size)
        return google, faker

    def orders(self, n: int, progress: Progress | None = None) -> int:
        """Publish n orders over published customers and books; none until both exist."""
        self.prepare()
        done = 0
        for size in _chunks(n):
            with _registry():
                customers = self.redis.srandmember(CUSTOMER_IDS, -size)
                books = self.redis.srandmember(BOOK_IDS, -size)
            if not customers or not books:
                log.info("no published customers or books yet: no orders this time")
                break
            batch = [
                (
                    {
                        "id": str(uuid.uuid4()),
                        "customer_id": c.decode(),
                        "book_id": b.decode(),
                        "quantity": random.randint(1, 5),
                        "timestamp": round(time.time(), 3),
                    },
                    "faker",
                )
                for c, b in zip(customers, books, strict=True)
            ]
            self._publish(entities.ORDERS, batch, None)
            done += size
            if progress:
                progress(entities.ORDERS, size)
        return done
