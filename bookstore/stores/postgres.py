"""Customers in PostgreSQL: integrity (primary key, case-insensitive unique e-mail) is why.

Last write wins in Kafka order, not in delivery order: each row remembers the record it came
from (Kafka timestamp, partition, offset) and an upsert only replaces it with a later record, so
redeliveries and retries that arrive late never roll a customer back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors
from psycopg2.extras import execute_values
from pydantic import Field, field_validator

from bookstore.errors import Refused, StoreUnavailable, Verdict, classify
from bookstore.namespace import NAME, Namespace, refuse_live, url_path, with_url_path
from bookstore.records import Record
from bookstore.stores import Closing, StoreSettings

if TYPE_CHECKING:  # validation (pydantic) is the workers' part, not the readers'
    from bookstore.schemas import Customer

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    source_timestamp bigint NOT NULL DEFAULT 0,
    source_partition int NOT NULL DEFAULT 0,
    source_offset bigint NOT NULL DEFAULT -1
);
CREATE UNIQUE INDEX IF NOT EXISTS customers_email_lower_key ON customers (lower(email));
CREATE TABLE IF NOT EXISTS rebuild_progress (
    source text PRIMARY KEY,
    offsets text NOT NULL
);
"""

SCHEMA_PRESENT = """
SELECT to_regclass('customers') IS NOT NULL
   AND to_regclass('customers_email_lower_key') IS NOT NULL
   AND to_regclass('rebuild_progress') IS NOT NULL
"""

UPSERT = """
INSERT INTO customers (id, name, email, source_timestamp, source_partition, source_offset)
VALUES %s
ON CONFLICT (id) DO UPDATE
   SET name = EXCLUDED.name, email = EXCLUDED.email,
       source_timestamp = EXCLUDED.source_timestamp,
       source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
 WHERE (customers.source_timestamp, customers.source_partition, customers.source_offset)
     < (EXCLUDED.source_timestamp, EXCLUDED.source_partition, EXCLUDED.source_offset)
"""


# What a failure means (bookstore.errors): SQLSTATE classes
# (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_TRANSIENT = {
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: shutdown, cannot connect now, statement timeout
    "58",  # system error: I/O error
}
_TRANSIENT_CODES = {"55P03", "55006"}  # lock not available, object in use
_RECORD = {
    "22",  # data exception: bad encoding, value out of range, string too long
    "23",  # integrity constraint violation
    "54",  # program limit exceeded: index row too big, too many columns
}


class PostgresSettings(StoreSettings, env_prefix="POSTGRES_"):
    # POSTGRES_DSN, a URL (a namespace is the same URL with another database)
    dsn: str = Field("postgresql://bookstore:bookstore@localhost:5432/bookstore", repr=False)

    @field_validator("dsn")
    @classmethod
    def _a_url_naming_a_database(cls, dsn: str) -> str:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError("must be a postgresql:// URL naming a database")
        return dsn

    @classmethod
    def unreachable(cls) -> PostgresSettings:
        return cls(dsn="postgresql://bookstore@127.0.0.1:1/nowhere")


@dataclass(frozen=True)
class CustomerRow:
    id: str
    name: str
    email: str


class CustomerStore(Closing):
    server = "PostgreSQL"
    configured_by = "POSTGRES_DSN"
    settings_class = PostgresSettings

    @staticmethod
    def classify(exc: BaseException) -> Verdict | None:
        """What a psycopg2 failure means, by its SQLSTATE (None: not psycopg2's)."""
        if not isinstance(exc, psycopg2.Error):
            return None
        code = exc.pgcode
        if code is None:  # raised by the client: the connection failed or was lost
            if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
                return Verdict.TRANSIENT
            return Verdict.UNEXPLAINED
        if code[:2] in _TRANSIENT or code in _TRANSIENT_CODES:
            return Verdict.TRANSIENT
        if code[:2] in _RECORD:
            return Verdict.RECORD
        return Verdict.UNEXPLAINED

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: psycopg2.extensions.connection | None = None

    @classmethod
    def from_settings(cls, own: PostgresSettings) -> CustomerStore:
        return cls(own.dsn)

    @classmethod
    def in_namespace(cls, own: PostgresSettings, namespace: Namespace) -> PostgresSettings:
        """A namespace is a database of its own on the same server."""
        refuse_live("postgres", url_path(own.dsn), namespace.name)
        return own.replace(dsn=with_url_path(own.dsn, namespace.name))

    @classmethod
    def create_namespace(cls, live: PostgresSettings, name: str) -> None:
        create_database(live.dsn, name)

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            with self._unavailable_on_connection_loss():
                conn = psycopg2.connect(self.dsn, connect_timeout=5)
                with conn, conn.cursor() as cur:
                    # Only what is missing: creating needs the owner's rights, which a worker's
                    # role does not have where the database's owner made the schema
                    # (`scripts/services up --secure`, docs/security.md).
                    cur.execute(SCHEMA_PRESENT)
                    if not cur.fetchone()[0]:
                        cur.execute(SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: list[tuple[Customer, Record]]) -> list[tuple[Record, str]]:
        """Store the batch idempotently in one transaction, or raise.

        An e-mail held by another customer raises `Refused`: the caller splits the batch until
        the customer that conflicts is alone (see bookstore.isolation).
        """
        latest: dict[str, tuple[Customer, Record]] = {}
        for customer, record in batch:  # one row per id: the latest record in Kafka order
            held = latest.get(customer.id)
            if held is None or record.kafka_order > held[1].kafka_order:
                latest[customer.id] = (customer, record)
        rows = list(latest.values())
        with self._unavailable_on_connection_loss():
            conn = self._connection()
            try:
                with conn, conn.cursor() as cur:
                    execute_values(cur, UPSERT, [_values(c, r) for c, r in rows])
            except psycopg2.errors.UniqueViolation as exc:
                who = f"e-mail {rows[0][0].email!r}" if len(rows) == 1 else "an e-mail of the batch"
                raise Refused(f"{who} already belongs to another customer") from exc
        return []

    @contextmanager
    def _unavailable_on_connection_loss(self) -> Iterator[None]:
        """A lost or refused connection becomes StoreUnavailable (and is dropped); every other
        error keeps its SQLSTATE for the error policy."""
        try:
            yield
        except psycopg2.Error as exc:
            if classify(exc, (CustomerStore,)) is not Verdict.TRANSIENT:
                raise
            self.close()
            raise StoreUnavailable(f"PostgreSQL unreachable: {_first_line(exc)}") from exc

    def get(self, customer_id: str) -> CustomerRow | None:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT id::text, name, email FROM customers WHERE id = %s", (customer_id,))
            row = cur.fetchone()
        return CustomerRow(*row) if row else None

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT id::text FROM customers WHERE id = ANY(%s::uuid[])", (list(ids),))
            return {r[0] for r in cur.fetchall()}

    def count(self) -> int:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM customers")
            return cur.fetchone()[0]

    def scan(self, chunk: int = 10_000) -> Iterator[tuple[CustomerRow, tuple[int, int, int]]]:
        """Every customer with the record it came from, streamed (a server-side cursor)."""
        conn = self._connection()
        with conn, conn.cursor(name="customers_scan") as cur:
            cur.itersize = chunk
            cur.execute(
                "SELECT id::text, name, email, source_timestamp, source_partition, source_offset"
                " FROM customers"
            )
            for cid, name, email, *source in cur:
                yield CustomerRow(cid, name, email), tuple(source)

    @staticmethod
    def form(customer: Customer) -> list[str]:
        """A customer as `verify` compares it with its stored row (`entries`)."""
        return [customer.name, customer.email]

    def entries(self) -> Iterator[tuple[str, list[str], tuple[int, int, int]]]:
        """(id, form, source record) of every stored customer, for `verify`."""
        for row, source in self.scan():
            yield row.id, [row.name, row.email], source

    def clear(self) -> None:
        """Remove every customer and the rebuild's progress (a rebuild starts from nothing)."""
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("TRUNCATE customers, rebuild_progress")

    def progress(self) -> dict[str, int]:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT offsets FROM rebuild_progress WHERE source = 'rebuild'")
            row = cur.fetchone()
        return json.loads(row[0]) if row else {}

    def keep_progress(self, offsets: dict[str, int]) -> None:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO rebuild_progress VALUES ('rebuild', %s) "
                "ON CONFLICT (source) DO UPDATE SET offsets = EXCLUDED.offsets",
                (json.dumps(offsets),),
            )


def _values(customer: Customer, record: Record) -> tuple:
    return (customer.id, customer.name, customer.email, *record.kafka_order)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def create_database(dsn: str, name: str) -> None:
    """Create database `name` on the server of `dsn` if missing (the role needs CREATEDB)."""
    if not NAME.fullmatch(name):
        raise ValueError(f"not a database name this creates: {name!r}")
    conn = psycopg2.connect(dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')  # NAME allows no quote
    finally:
        conn.close()
