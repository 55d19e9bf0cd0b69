"""Books in MongoDB (`bookstore.books`, `_id` = the Google id): flexible documents."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bson.errors import InvalidDocument
from pydantic import Field, field_validator
from pymongo import MongoClient, ReplaceOne
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)

from bookstore.errors import StoreUnavailable, Verdict, classify
from bookstore.namespace import Namespace, refuse_live
from bookstore.records import Record
from bookstore.stores import Closing, StoreSettings

if TYPE_CHECKING:  # validation (pydantic) is the workers' part, not the readers'
    from bookstore.schemas import Book


class MongoSettings(StoreSettings, env_prefix="MONGO_"):
    uri: str = Field("mongodb://localhost:27017", repr=False)  # MONGO_URI; may hold a password
    # MONGO_DB: MongoDB refuses a database name with any of /\. "$ or longer than 63 bytes
    db: str = Field("bookstore", pattern=r'^[^/\\. "$]+$')

    @field_validator("db")
    @classmethod
    def _at_most_63_bytes(cls, db: str) -> str:
        if len(db.encode()) > 63:
            raise ValueError("longer than 63 bytes (UTF-8), which MongoDB refuses")
        return db

    @classmethod
    def unreachable(cls) -> MongoSettings:
        return cls(uri="mongodb://127.0.0.1:1")


# FerretDB v1 (SQLite) holds one pooled connection per statement until an update command ends,
# from a pool of 100 shared by all clients: one command of >100 upserts deadlocks the server.
# (scripts/services builds it with that bug patched; others may not.) Small commands keep every
# client well inside the pool.
WRITE_CHUNK = 25
DUPLICATE_KEY = 11000


# What a failure means (bookstore.errors): MongoDB error codes (src/mongo/base/error_codes.yml),
# as MongoDB and FerretDB send them.
_TRANSIENT = {
    6,  # HostUnreachable
    7,  # HostNotFound
    24,  # LockTimeout
    46,  # LockBusy
    50,  # MaxTimeMSExpired
    64,  # WriteConcernFailed
    89,  # NetworkTimeout
    91,  # ShutdownInProgress
    112,  # WriteConflict
    117,  # ConflictingOperationInProgress
    189,  # PrimarySteppedDown
    202,  # NetworkInterfaceExceededTimeLimit
    262,  # ExceededTimeLimit
    9001,  # SocketException
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
    14031,  # OutOfDiskSpace
}
_RECORD = {
    2,  # BadValue (FerretDB: infinity, nested arrays, invalid keys)
    9,  # FailedToParse
    14,  # TypeMismatch
    15,  # Overflow
    52,  # DollarPrefixedFieldName
    55,  # InvalidDBRef
    56,  # EmptyFieldName
    57,  # DottedFieldName
    121,  # DocumentValidationFailure
    10334,  # BSONObjectTooLarge
    17280,  # KeyTooLong
}


class BookStore(Closing):
    server = "MongoDB"
    configured_by = "MONGO_URI"
    settings_class = MongoSettings

    @staticmethod
    def classify(exc: BaseException) -> Verdict | None:
        """What a pymongo failure means, by its error codes (None: not pymongo's)."""
        if isinstance(exc, InvalidDocument):
            return Verdict.RECORD  # this record cannot be encoded as BSON
        if not isinstance(exc, PyMongoError):
            return None
        if isinstance(
            exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | WriteConcernError
        ):
            return Verdict.TRANSIENT
        if isinstance(exc, DocumentTooLarge):
            return Verdict.RECORD
        if isinstance(exc, BulkWriteError):
            details = exc.details or {}
            if details.get("writeConcernErrors"):
                return Verdict.TRANSIENT
            verdicts = {mongo_code(e.get("code")) for e in details.get("writeErrors", [])}
            if not verdicts or Verdict.TRANSIENT in verdicts:  # no per-document reason: the server
                return Verdict.TRANSIENT
            return Verdict.UNEXPLAINED if Verdict.UNEXPLAINED in verdicts else Verdict.RECORD
        if isinstance(exc, OperationFailure):
            if exc.has_error_label("RetryableWriteError"):
                return Verdict.TRANSIENT
            return mongo_code(exc.code)
        return Verdict.UNEXPLAINED

    def __init__(self, uri: str, database: str):
        self.uri = uri
        self.database = database
        self._client: MongoClient | None = None

    @classmethod
    def from_settings(cls, own: MongoSettings) -> BookStore:
        return cls(own.uri, own.db)

    @classmethod
    def in_namespace(cls, own: MongoSettings, namespace: Namespace) -> MongoSettings:
        """A namespace is a database of its own on the same server."""
        refuse_live("mongo", own.db, namespace.name)
        return own.replace(db=namespace.name)

    @classmethod
    def create_namespace(cls, live: MongoSettings, name: str) -> None:
        """Nothing: MongoDB creates a database with its first write."""

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

    def write(self, batch: list[tuple[Book, Record]]) -> list[tuple[Record, str]]:
        """Store each book by `_id`, idempotently, last write wins in Kafka order: insert the
        batch in bulk, then replace the documents already there that hold an older record.

        (On FerretDB a bulk insert is ~80x faster than upserts, and an `_id` `$in` query scans the
        whole collection, so inserting first beats looking first.) Each document remembers the
        record it came from (`_source`), as customers do. Returns the records MongoDB refused for
        a reason about the document alone; raises for anything else.
        """
        latest: dict[str, tuple[Book, Record]] = {}
        for book, record in batch:  # one write per id: the latest record in Kafka order
            held = latest.get(book.id)
            if held is None or record.kafka_order > held[1].kafka_order:
                latest[book.id] = (book, record)
        rows = [(_document(book, record), record) for book, record in latest.values()]
        with self._unavailable_on_connection_loss():
            refused, existing = self._insert(rows)
            for start in range(0, len(existing), WRITE_CHUNK):
                self._replace_older(existing[start : start + WRITE_CHUNK])
        return refused

    def _insert(self, rows: list[tuple[dict[str, Any], Record]]) -> tuple[list, list]:
        """Insert documents; return (refused, those whose `_id` is already stored)."""
        if not rows:
            return [], []
        try:
            self.books.insert_many([doc for doc, _ in rows], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if (
                exc.details.get("writeConcernErrors")
                or not errors
                or any(
                    mongo_code(e.get("code")) is not Verdict.RECORD
                    for e in errors
                    if e.get("code") != DUPLICATE_KEY
                )
            ):
                raise  # the server, or an error nobody foresaw: the error policy decides
            refused, existing = [], []
            for err in errors:
                row = rows[err["index"]]
                if err.get("code") == DUPLICATE_KEY:
                    existing.append(row)
                else:
                    refused.append((row[1], f"MongoDB refused it: {err.get('errmsg')}"))
            return refused, existing
        return [], []

    def _replace_older(self, rows: list[tuple[dict[str, Any], Record]]) -> None:
        """Replace each document unless it holds the same or a later record (then it stays)."""
        if len(rows) == 1:  # alone, an error comes back with its code (FerretDB's bulk replies
            doc, record = rows[0]  # to a failed replace lack fields pymongo needs)
            self.books.replace_one({"_id": doc["_id"], **_older_than(record)}, doc)
            return
        self.books.bulk_write(
            [ReplaceOne({"_id": doc["_id"], **_older_than(record)}, doc) for doc, record in rows],
            ordered=False,
        )

    @contextmanager
    def _unavailable_on_connection_loss(self) -> Iterator[None]:
        """A server that cannot be reached becomes StoreUnavailable (and the client is dropped);
        every other error keeps its code for the error policy."""
        try:
            yield
        except (PyMongoError, OSError) as exc:
            if classify(exc, (BookStore,)) is not Verdict.TRANSIENT:
                raise
            self.close()
            raise StoreUnavailable(f"MongoDB unreachable: {exc}") from exc

    def get_many(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """A few books by id (one `_id` lookup each: FerretDB scans the collection for `$in`)."""
        found = (self.books.find_one({"_id": i}) for i in set(ids))
        return {doc["_id"]: doc for doc in found if doc is not None}

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of many ids are stored: one pass over the `_id`s, whatever the number asked."""
        return {doc["_id"] for doc in self.books.find({}, {"_id": 1})} & set(ids)

    def count(self) -> int:
        return self.books.count_documents({})

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every document, streamed."""
        return self.books.find({}, batch_size=2000)

    @staticmethod
    def form(book: Book) -> dict[str, Any]:
        """A book as `verify` compares it with its stored document (`entries`)."""
        return _form(book.document())

    def entries(self) -> Iterator[tuple[str, dict[str, Any], tuple[int, int, int] | None]]:
        """(id, form, source record) of every stored book, for `verify` (a document written
        before books remembered their record has no source)."""
        for doc in self.scan():
            source = source_order(doc["_source"]) if "_source" in doc else None
            yield doc["_id"], _form(doc), source

    def clear(self) -> None:
        """Remove every book and the rebuild's progress (a rebuild starts from nothing)."""
        self.books.drop()
        self.books.create_index("isbn")
        self.books.database.rebuild_progress.drop()

    def progress(self) -> dict[str, int]:
        held = self.books.database.rebuild_progress.find_one({"_id": "rebuild"})
        return json.loads(held["offsets"]) if held else {}  # JSON: topic names hold dots

    def keep_progress(self, offsets: dict[str, int]) -> None:
        self.books.database.rebuild_progress.replace_one(
            {"_id": "rebuild"}, {"_id": "rebuild", "offsets": json.dumps(offsets)}, upsert=True
        )


def _form(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("_id", "_source")}


def _document(book: Book, record: Record) -> dict[str, Any]:
    return {**book.document(), "_source": source_version(record)}


def source_order(version: str) -> tuple[int, int, int]:
    """(timestamp, partition, offset) back from `source_version`."""
    timestamp, partition, offset = version.split(":")
    return int(timestamp), int(partition), int(offset)


def source_version(record: Record) -> str:
    """The record a document came from, as one string that sorts in Kafka order (timestamp,
    partition, offset; fixed widths). One scalar field, not a sub-document: FerretDB pays per
    field, and a sub-document made every book insert 60% slower."""
    timestamp, partition, offset = record.kafka_order
    return f"{timestamp:015d}:{partition:05d}:{offset:019d}"


def _older_than(record: Record) -> dict[str, Any]:
    """A filter matching a document written from an earlier record than `record`, or from
    before documents remembered their record (no `_source`)."""
    return {"_source": {"$not": {"$gte": source_version(record)}}}


def mongo_code(code: int | None) -> Verdict:
    """What a MongoDB error code means (also for the per-document errors of a bulk write)."""
    if code in _TRANSIENT:
        return Verdict.TRANSIENT
    if code in _RECORD:
        return Verdict.RECORD
    return Verdict.UNEXPLAINED
