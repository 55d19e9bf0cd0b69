"""A throw-away fourth entity, added through the entity table alone: book reviews on a topic of
their own, validated by their own schema, persisted by a tiny SQLite store from their own Celery
queue. tests/integration/test_fourth_entity.py installs it (an entry point in the group
`bookstore.entities`) for the processes it starts; nothing in the product names it."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bookstore.entities import Entity
from bookstore.errors import Verdict
from bookstore.namespace import Namespace
from bookstore.stores import Closing, StoreSettings

QUEUE = "reviews"
# sqlite3's messages for "the file cannot be used now" (its OperationalError is also a bad query)
OUTAGES = ("locked", "busy", "disk I/O", "unable to open", "is full", "readonly")


class Review(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    book_id: str = Field(min_length=1)
    stars: int = Field(ge=1, le=5)


class ReviewSettings(StoreSettings, env_prefix="REVIEWS_"):
    db: str = Field("reviews.sqlite", min_length=1)  # REVIEWS_DB: the file


class ReviewStore(Closing):
    """One SQLite table. Last write wins in Kafka order, as the contract asks of every store
    (tests/integration/test_stores.py): each row remembers its record's (timestamp, partition,
    offset) and only a later record replaces it, so redeliveries never roll a review back."""

    server = "SQLite"
    configured_by = "REVIEWS_DB"
    settings_class = ReviewSettings

    @staticmethod
    def classify(exc: BaseException) -> Verdict | None:
        """What an sqlite3 failure means (None: not sqlite3's): a locked or unreachable file is
        an outage, a refused value the record's own fault."""
        if not isinstance(exc, sqlite3.Error):
            return None
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
            return Verdict.RECORD
        if isinstance(exc, sqlite3.OperationalError) and any(m in str(exc) for m in OUTAGES):
            return Verdict.TRANSIENT
        return Verdict.UNEXPLAINED

    def __init__(self, path: str):
        self.path = path
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_settings(cls, own: ReviewSettings) -> ReviewStore:
        return cls(own.db)

    @classmethod
    def in_namespace(cls, own: ReviewSettings, namespace: Namespace) -> ReviewSettings:
        """A namespace is a file of its own beside the live one: reviews.NAME.sqlite."""
        live = Path(own.db)
        return own.replace(db=str(live.with_name(f"{live.stem}.{namespace.name}{live.suffix}")))

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS reviews (id TEXT PRIMARY KEY, book_id TEXT, "
                "stars INTEGER, ts INTEGER, part INTEGER, off INTEGER)"
            )
        return self._db

    def write(self, batch: list[tuple[Review, Any]]) -> list[tuple[Any, str]]:
        with self._conn() as db:
            db.executemany(
                "INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "book_id = excluded.book_id, stars = excluded.stars, ts = excluded.ts, "
                "part = excluded.part, off = excluded.off "
                "WHERE (ts, part, off) < (excluded.ts, excluded.part, excluded.off)",
                [(r.id, r.book_id, r.stars, *rec.kafka_order) for r, rec in batch],
            )
        return []

    @staticmethod
    def form(review: Review) -> list[Any]:
        return [review.book_id, review.stars]

    def entries(self) -> Iterator[tuple[str, list[Any], tuple[int, int, int]]]:
        for rid, book_id, stars, *source in self._conn().execute("SELECT * FROM reviews"):
            yield rid, [book_id, stars], tuple(source)

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM reviews").fetchone()[0]

    def clear(self) -> None:
        with self._conn() as db:
            db.execute("DELETE FROM reviews")

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


REVIEWS = Entity(
    name=os.environ.get("REVIEWS_NAME", "reviews"),
    queue=QUEUE,
    store=f"{__name__}:ReviewStore",
    model=f"{__name__}:Review",
)
