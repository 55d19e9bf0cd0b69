"""Books in MongoDB (`bookstore.books`, `_id` = the Google id): flexible documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bson.errors import InvalidDocument
from pymongo import MongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from bookstore.records import Record
from bookstore.schemas import Book
from bookstore.stores import StoreUnavailable

# FerretDB v1 (SQLite) holds one pooled connection per statement until an update command ends,
# from a pool of 100 shared by all clients: one command of >100 upserts deadlocks the server.
# (scripts/services builds it with that bug patched; others may not.) Small commands keep every
# client well inside the pool.
WRITE_CHUNK = 25
DUPLICATE_KEY = 11000


class BookStore:
    def __init__(self, uri: str, database: str):
        self.uri = uri
        self.database = database
        self._client: MongoClient | None = None

    @property
    def books(self):
        if self._client is None:
            self._client = MongoClient(
                self.uri,
                serverSelectionTimeoutMS=5000,
                connectTimeoutMS=5000,
                socketTimeoutMS=30000,  # a hung server becomes a retry, not a stuck worker
                retryWrites=False,
            )
            try:
                self._client[self.database].books.create_index("isbn")
            except (ConnectionFailure, OperationFailure) as exc:
                self.close()
                raise StoreUnavailable(f"MongoDB unreachable: {exc}") from exc
        return self._client[self.database].books

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def upsert(self, batch: list[tuple[Book, Record]]) -> list[tuple[Record, str]]:
        """Store each book by `_id`, idempotently: insert the batch in bulk, and replace the
        documents whose `_id` was already there.

        (On FerretDB a bulk insert is ~80x faster than upserts, and an `_id` `$in` query scans the
        whole collection, so inserting first beats looking first.) Returns the records MongoDB
        refused for a reason retrying will not fix.
        """
        latest: dict[str, tuple[dict[str, Any], Record]] = {}
        for book, record in batch:  # one write per id: the latest record in the batch
            latest[book.id] = (book.document(), record)
        try:
            rejected, existing = self._insert(list(latest.values()))
            for start in range(0, len(existing), WRITE_CHUNK):
                rejected += self._replace(existing[start : start + WRITE_CHUNK])
        except (ConnectionFailure, OSError) as exc:
            self.close()
            raise StoreUnavailable(f"MongoDB unreachable: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB error: {exc}") from exc
        return rejected

    def _insert(self, rows: list[tuple[dict[str, Any], Record]]) -> tuple[list, list]:
        """Insert documents; return (refused, those whose `_id` is already stored)."""
        if not rows:
            return [], []
        try:
            self.books.insert_many([doc for doc, _ in rows], ordered=False)
        except BulkWriteError as exc:
            refused, existing = [], []
            for err in _write_errors(exc):
                row = rows[err["index"]]
                if err.get("code") == DUPLICATE_KEY:
                    existing.append(row)
                else:
                    refused.append((row[1], f"MongoDB refused it: {err.get('errmsg')}"))
            return refused, existing
        except (OverflowError, ValueError, InvalidDocument):
            return self._one_by_one(rows), []
        return [], []

    def _replace(self, rows: list[tuple[dict[str, Any], Record]]) -> list[tuple[Record, str]]:
        try:
            self.books.bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc, _ in rows],
                ordered=False,
            )
        except BulkWriteError as exc:
            return [
                (rows[e["index"]][1], f"MongoDB refused it: {e.get('errmsg')}")
                for e in _write_errors(exc)
            ]
        except (OverflowError, ValueError, InvalidDocument):
            return self._one_by_one(rows)
        return []

    def _one_by_one(self, rows: list[tuple[dict[str, Any], Record]]) -> list[tuple[Record, str]]:
        """Slow path when a document cannot even be encoded (e.g. an integer beyond 64 bits)."""
        refused = []
        for doc, record in rows:
            try:
                self.books.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            except (OverflowError, ValueError, InvalidDocument) as exc:
                refused.append((record, f"cannot be stored in MongoDB: {exc}"))
        return refused

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """A few books by id (one `_id` lookup each: FerretDB scans the collection for `$in`)."""
        found = (self.books.find_one({"_id": i}) for i in set(ids))
        return {doc["_id"]: doc for doc in found if doc is not None}

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of many ids are stored: one pass over the `_id`s, whatever the number asked."""
        return {doc["_id"] for doc in self.books.find({}, {"_id": 1})} & set(ids)

    def count(self) -> int:
        return self.books.count_documents({})


def _write_errors(exc: BulkWriteError) -> list[dict[str, Any]]:
    """Per-document errors; anything else (write concern, no details) is worth a retry."""
    errors = exc.details.get("writeErrors", [])
    if exc.details.get("writeConcernErrors") or not errors:
        raise StoreUnavailable(f"MongoDB write not acknowledged: {exc}") from exc
    return errors
