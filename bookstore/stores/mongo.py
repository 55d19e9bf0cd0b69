"""Books in MongoDB (`bookstore.books`, `_id` = the Google id): flexible documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import MongoClient, ReplaceOne
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from bookstore.records import Record
from bookstore.schemas import Book
from bookstore.stores import StoreUnavailable

# FerretDB v1 (SQLite) holds one pooled connection per statement until an update command ends,
# from a pool of 100 shared by all clients: one command of >100 upserts deadlocks the server.
# Small commands keep every client well inside the pool.
WRITE_CHUNK = 25


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
        """Replace-or-insert each book by `_id` in unordered bulk writes (idempotent).

        Returns the records MongoDB refused for a reason retrying will not fix.
        """
        latest: dict[str, tuple[Book, Record]] = {}
        for book, record in batch:  # one write per id: the latest record in the batch
            latest[book.id] = (book, record)
        ops, rejected = [], []
        for book, record in latest.values():
            try:
                ops.append((ReplaceOne({"_id": book.id}, book.document(), upsert=True), record))
            except (OverflowError, ValueError) as exc:  # e.g. an integer beyond 64 bits
                rejected.append((record, f"cannot be stored in MongoDB: {exc}"))
        if not ops:
            return rejected
        for start in range(0, len(ops), WRITE_CHUNK):
            rejected.extend(self._write(ops[start : start + WRITE_CHUNK]))
        return rejected

    def _write(self, ops: list[tuple[ReplaceOne, Record]]) -> list[tuple[Record, str]]:
        try:
            self.books.bulk_write([op for op, _ in ops], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if exc.details.get("writeConcernErrors") or not errors:
                raise StoreUnavailable(f"MongoDB write not acknowledged: {exc}") from exc
            return [(ops[e["index"]][1], f"MongoDB refused it: {e.get('errmsg')}") for e in errors]
        except (ConnectionFailure, OSError) as exc:
            self.close()
            raise StoreUnavailable(f"MongoDB unreachable: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB error: {exc}") from exc
        return []

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.books.find({"_id": {"$in": list(ids)}})}

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        return {doc["_id"] for doc in self.books.find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    def count(self) -> int:
        return self.books.count_documents({})
