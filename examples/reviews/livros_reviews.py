"""Book reviews, an entity added to Livros & Dados by a package of its own: a topic, a schema, a
Celery queue and a tiny SQLite store, declared to the product by one entry point in the group
`bookstore.entities` (pyproject.toml). Nothing in the product names it.

The template for your own entity (docs: "Add an entity"): the model says what a valid record is
and gives an example of one; the store writes a batch idempotently, last write wins in Kafka
order, and says what its driver's failures mean, where its server is not, where a namespace
goes and how far a rebuild has read. The row ties them to a topic and a queue. The product's
store contract runs against it once it is installed (tests/integration/test_store_contract.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bookstore.entities import Entity
from bookstore.errors import Verdict
from bookstore.namespace import Namespace, beside
from bookstore.stores import Closing, StoreSettings

QUEUE = "reviews"  # its Celery queue, and the store's name in `rebuild --store`, `verify`
# sqlite3's messages for "the file cannot be used now" (its OperationalError is also a bad query)
OUTAGES = ("locked", "busy", "disk I/O", "unable to open", "is full", "readonly")


class Review(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    book_id: str = Field(min_length=1)
    stars: int = Field(ge=1, le=5)

    @staticmethod
    def example(key: str, n: int) -> dict[str, Any]:
        """Version `n` of a valid review with id `key` (the store contract, the benchmarks)."""
        return {"id": key, "book_id": f"vol{n}", "stars": 1 + n % 5}


class ReviewSettings(StoreSettings, env_prefix="REVIEWS_"):
    db: str = Field("reviews.sqlite", min_length=1)  # REVIEWS_DB: the file

    @classmethod
    def unreachable(cls) -> ReviewSettings:
        return cls(db="/nonexistent/reviews.sqlite")


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
        return own.replace(db=beside(own.db, namespace.name))

    @classmethod
    def create_namespace(cls, live: ReviewSettings, name: str) -> None:
        """Nothing: SQLite creates the file with its first write."""

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS reviews (id TEXT PRIMARY KEY, book_id TEXT, "
                "stars INTEGER, ts INTEGER, part INTEGER, off INTEGER)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS rebuild_progress "
                "(source TEXT PRIMARY KEY, offsets TEXT)"
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

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        found = self._conn().execute(f"SELECT id FROM reviews WHERE id IN ({marks})", ids)
        return {row[0] for row in found}

    def count(self) -> int:
        return self._conn().execute("SELECT count(*) FROM reviews").fetchone()[0]

    def clear(self) -> None:
        with self._conn() as db:
            db.execute("DELETE FROM reviews")
            db.execute("DELETE FROM rebuild_progress")

    def progress(self) -> dict[str, int]:
        row = self._conn().execute("SELECT offsets FROM rebuild_progress").fetchone()
        return json.loads(row[0]) if row else {}

    def keep_progress(self, offsets: dict[str, int]) -> None:
        with self._conn() as db:
            db.execute(
                "INSERT OR REPLACE INTO rebuild_progress VALUES ('rebuild', ?)",
                (json.dumps(offsets),),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# The row: its topic's name (REVIEWS_NAME, "reviews" by default: a test runs it on a topic of its
# own), its queue, where its store and model are.
REVIEWS = Entity(
    name=os.environ.get("REVIEWS_NAME", "reviews"),
    queue=QUEUE,
    store=f"{__name__}:ReviewStore",
    model=f"{__name__}:Review",
)
