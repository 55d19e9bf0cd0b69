"""Operator commands: stats, history, check, dead-letters list / replay.

Every command reads the stores through their own modules (bookstore.stores.*), prints a table or,
with --json, one JSON document on stdout. A server that cannot be reached or an unknown id gives
one line on stderr and a distinct exit code, never a traceback:

    0 ok · 1 check found an inconsistency · 2 usage error · 3 unknown id · 4 a server is unreachable
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import psycopg2
import pymongo.errors
import redis
import typer
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kombu import Connection
from kombu.exceptions import KombuError
from rich.console import Console
from rich.table import Table

from bookstore import topics
from bookstore.cli.app import app
from bookstore.config import Settings, load_settings
from bookstore.kafka import KafkaUnavailable, check_reachable, send_confirmed
from bookstore.stores import StoreUnavailable
from bookstore.stores.audit import AuditLog
from bookstore.stores.mongo import BookStore
from bookstore.stores.postgres import CustomerStore
from bookstore.stores.redis_orders import ALL_ORDERS, OrderStore, order_key

EXIT_INCONSISTENT = 1
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
QUEUES = (*topics.STORE_QUEUE.values(), topics.AUDIT_QUEUE, topics.GENERATE_QUEUE)
EXAMPLES = 5  # ids shown per problem in `check`
BATCH = 1000

JsonOption = typer.Option(False, "--json", help="one JSON document on stdout, for scripts")


class CliError(Exception):
    """A failure the operator can act on: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for noise in (" (configured timeouts", ", Timeout:"):  # pymongo's long suffixes
        text = text.split(noise)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unavailable(exc: BaseException) -> CliError | None:
    """Name the server behind a connection failure (URLs are never printed: they hold passwords)."""
    if isinstance(exc, StoreUnavailable):
        return CliError(_one_line(exc), EXIT_UNAVAILABLE)
    for types, server in (
        (psycopg2.Error, "PostgreSQL (POSTGRES_DSN)"),
        (pymongo.errors.PyMongoError, "MongoDB (MONGO_URI)"),
        (redis.RedisError, "Redis (REDIS_URL)"),
        ((KafkaUnavailable, KafkaError), "Kafka"),
    ):
        if isinstance(exc, types):
            return CliError(f"{server}: {_one_line(exc)}", EXIT_UNAVAILABLE)
    return None


@contextmanager
def _reporting() -> Iterator[None]:
    """Turn failures into one stderr line and an exit code."""
    try:
        yield
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except Exception as exc:
        error = _unavailable(exc)
        if error is None:
            raise
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.code) from None


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(
            col,
            justify="right" if col in _NUMERIC else "left",
            no_wrap=col in _NO_WRAP,  # ids and coordinates are copied by operators: never cut
        )
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    return table


_NUMERIC = {
    "count",
    "partition",
    "offset",
    "committed",
    "end",
    "lag",
    "messages",
    "consumers",
    "qty",
}
_NO_WRAP = {"when (UTC)", "dead letter", "origin", "topic", "queue", "what", "check"}


# --- Kafka -------------------------------------------------------------------------------------


@contextmanager
def _consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    """A group-less consumer for reading offsets and records (never commits anything)."""
    check_reachable(settings)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id="bookstore-cli",
    )
    try:
        yield consumer
    finally:
        consumer.close()


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    beginning: int
    end: int
    committed: int | None  # the bridge group's next offset to consume, None if never committed

    @property
    def lag(self) -> int:
        return self.end - (self.beginning if self.committed is None else self.committed)


def _partition_offsets(settings: Settings) -> list[PartitionOffsets]:
    """Every entity-topic partition: log start/end and the bridge group's committed offset."""
    check_reachable(settings)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id="bookstore-cli"
    )
    try:
        group = settings.bridge_group_id
        committed = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    with _consumer(settings) as consumer:
        tps = [
            TopicPartition(t, p)
            for t in topics.ENTITY_TOPICS
            for p in sorted(consumer.partitions_for_topic(t))
        ]
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    return [
        PartitionOffsets(
            tp.topic,
            tp.partition,
            begins[tp],
            ends[tp],
            committed[tp].offset if tp in committed and committed[tp].offset >= 0 else None,
        )
        for tp in tps
    ]


@dataclass(frozen=True)
class DeadLetterView:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def coordinates(self) -> str:
        return f"{topics.DEAD_LETTERS}[{self.partition}]@{self.offset}"

    @property
    def origin(self) -> str:
        h = self.headers
        return f"{h.get('origin.topic')}[{h.get('origin.partition')}]@{h.get('origin.offset')}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": _text(self.key),
            "headers": self.headers,
            "value": None,
        }
        if self.value is not None:
            try:
                data["value"] = self.value.decode("utf-8")
            except UnicodeDecodeError:
                data["value_b64"] = base64.b64encode(self.value).decode("ascii")
        return data


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _read_dead_letters(
    settings: Settings,
    last: int | None = None,
    ranges: dict[int, tuple[int, int]] | None = None,
    timeout_ms: int = 60_000,
) -> list[DeadLetterView]:
    """Read the dead-letter topic without a consumer group: the `last` newest per partition, or
    the given [start, stop) offset range per partition, or everything. Oldest first."""
    found: list[DeadLetterView] = []
    with _consumer(settings) as consumer:
        tps = [
            TopicPartition(topics.DEAD_LETTERS, p)
            for p in sorted(consumer.partitions_for_topic(topics.DEAD_LETTERS))
        ]
        if ranges is not None:
            tps = [tp for tp in tps if tp.partition in ranges]
        if not tps:
            return []
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        stops: dict[TopicPartition, int] = {}
        for tp in tps:
            start, stop = begins[tp], ends[tp]
            if ranges is not None:
                start, stop = (
                    max(start, ranges[tp.partition][0]),
                    min(stop, ranges[tp.partition][1]),
                )
            elif last is not None:
                start = max(start, stop - last)
            if start < stop:
                starts[tp], stops[tp] = start, stop
        if not stops:
            return []
        consumer.assign(list(stops))
        for tp, start in starts.items():
            consumer.seek(tp, start)
        waited = 0
        while stops:
            if waited > timeout_ms:
                raise KafkaUnavailable(f"timed out reading {topics.DEAD_LETTERS}")
            batch = consumer.poll(timeout_ms=500)
            waited += 500
            for tp, records in batch.items():
                for r in records:
                    if tp in stops and r.offset < stops[tp]:
                        headers = {k: _text(v) or "" for k, v in (r.headers or [])}
                        found.append(
                            DeadLetterView(
                                r.partition, r.offset, r.timestamp, r.key, r.value, headers
                            )
                        )
            for tp in list(stops):
                if consumer.position(tp) >= stops[tp]:
                    del stops[tp]
                    consumer.pause(tp)
    return sorted(found, key=lambda d: (d.timestamp, d.partition, d.offset))


def _dead_letter_count(settings: Settings) -> int:
    with _consumer(settings) as consumer:
        tps = [
            TopicPartition(topics.DEAD_LETTERS, p)
            for p in consumer.partitions_for_topic(topics.DEAD_LETTERS)
        ]
        if not tps:
            return 0
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    return sum(ends[tp] - begins[tp] for tp in tps)


# --- RabbitMQ ------------------------------------------------------------------------------------


def _queue_depths(settings: Settings) -> dict[str, dict[str, int] | None]:
    """Ready messages and consumers per Celery queue (None: not declared yet), passively."""
    depths: dict[str, dict[str, int] | None] = {}
    with Connection(settings.celery_broker_url, connect_timeout=5) as conn:
        try:
            conn.ensure_connection(max_retries=1, timeout=5)
            for queue in QUEUES:
                channel = conn.channel()
                try:
                    _, messages, consumers = channel.queue_declare(queue, passive=True)
                    depths[queue] = {"messages": messages, "consumers": consumers}
                except conn.channel_errors:
                    depths[queue] = None  # 404: no worker or bridge declared it yet
                finally:
                    with suppress(Exception):
                        channel.close()
        except (OSError, KombuError, *conn.connection_errors) as exc:
            message = f"RabbitMQ (CELERY_BROKER_URL): {_one_line(exc)}"
            raise CliError(message, EXIT_UNAVAILABLE) from exc
    return depths


# --- stats -------------------------------------------------------------------------------------


def _audit_lines(settings: Settings) -> int:
    path = Path(settings.audit_log_path)
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        return 0  # nothing audited yet
    except OSError as exc:
        raise CliError(f"cannot read audit log {path}: {exc.strerror}", EXIT_UNAVAILABLE) from exc


def _gather(sections: dict[str, Callable[[], Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run each section; one unreachable server must not hide what the others can tell."""
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, fn in sections.items():
        try:
            results[name] = fn()
        except CliError as exc:
            errors[name] = str(exc)
        except Exception as exc:
            error = _unavailable(exc)
            if error is None:
                raise
            errors[name] = str(error)
    return results, errors


@app.command()
def stats(as_json: bool = JsonOption) -> None:
    """Counts per store, dead letters, audit lines, consumer lag per partition, queue depths."""
    settings = load_settings()
    customers, books, orders = (
        CustomerStore(settings.postgres_dsn),
        BookStore(settings.mongo_uri, settings.mongo_db),
        OrderStore(settings.redis_url),
    )
    try:
        results, errors = _gather(
            {
                "customers": customers.count,
                "books": books.count,
                "orders": orders.count,
                "audit_lines": lambda: _audit_lines(settings),
                "dead_letters": lambda: _dead_letter_count(settings),
                "lag": lambda: _partition_offsets(settings),
                "queues": lambda: _queue_depths(settings),
            }
        )
    finally:
        for store in (customers, books, orders):
            store.close()

    lag: list[PartitionOffsets] = results.get("lag", [])
    if as_json:
        data = {k: v for k, v in results.items() if k != "lag"}
        if "lag" in results:
            data["lag"] = [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "committed": p.committed,
                    "end": p.end,
                    "lag": p.lag,
                }
                for p in lag
            ]
        data["group"] = settings.bridge_group_id
        data["errors"] = errors
        _print_json(data)
    else:
        console = Console()
        counts = [
            ["customers (PostgreSQL)", results.get("customers")],
            ["books (MongoDB)", results.get("books")],
            ["orders (Redis)", results.get("orders")],
            ["audit lines", results.get("audit_lines")],
            ["dead letters (Kafka)", results.get("dead_letters")],
        ]
        console.print(_table("Stores", ["what", "count"], counts))
        if "lag" in results:
            rows = [[p.topic, p.partition, p.committed, p.end, p.lag] for p in lag]
            title = f"Consumer lag of group {settings.bridge_group_id}"
            console.print(_table(title, ["topic", "partition", "committed", "end", "lag"], rows))
        if "queues" in results:
            rows = [
                [q, d["messages"], d["consumers"]] if d else [q, None, None]
                for q, d in results["queues"].items()
            ]
            console.print(_table("Celery queues", ["queue", "messages", "consumers"], rows))
    for message in dict.fromkeys(errors.values()):
        typer.echo(f"error: {message}", err=True)
    if errors:
        raise typer.Exit(EXIT_UNAVAILABLE)


# --- history -----------------------------------------------------------------------------------


def _customer_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a customer id (a UUID)") from None


@app.command()
def history(
    customer_id: str = typer.Argument(..., help="the customer's id (UUID)"),
    limit: int = typer.Option(20, "--limit", min=1, help="newest orders to show"),
    as_json: bool = JsonOption,
) -> None:
    """A customer (PostgreSQL), their orders newest first (Redis), each book (MongoDB)."""
    settings = load_settings()
    cid = _customer_id(customer_id)
    customers = CustomerStore(settings.postgres_dsn)
    books = BookStore(settings.mongo_uri, settings.mongo_db)
    orders = OrderStore(settings.redis_url)
    with _reporting():
        try:
            customer = customers.get(cid)
            placed = orders.history(cid, limit)
            if customer is None and not placed:
                raise CliError(
                    f"unknown customer {cid}: not in PostgreSQL, no orders", EXIT_NOT_FOUND
                )
            titles = books.get_many({o.book_id for o in placed}) if placed else {}
        finally:
            for store in (customers, books, orders):
                store.close()

    rows = []
    for o in placed:
        book = titles.get(o.book_id)
        rows.append(
            {
                "id": o.id,
                "timestamp": o.timestamp,
                "quantity": o.quantity,
                "book_id": o.book_id,
                "book": None
                if book is None
                else {"title": book.get("title"), "authors": book.get("authors") or []},
            }
        )
    who = (
        None
        if customer is None
        else {"id": customer.id, "name": customer.name, "email": customer.email}
    )
    if as_json:
        _print_json({"customer": who, "orders": rows})
        return
    console = Console()
    if who is None:
        console.print(f"customer {cid}: [yellow]not (yet) in PostgreSQL[/yellow]")
    else:
        console.print(f"[bold]{who['name']}[/bold] <{who['email']}>  {who['id']}")
    table_rows = [
        [
            r["timestamp"].replace("T", " ").removesuffix("Z").split("+")[0],
            r["quantity"],
            r["book"]["title"] if r["book"] else f"(book {r['book_id']} not in MongoDB)",
            ", ".join(r["book"]["authors"]) if r["book"] else "",
        ]
        for r in rows
    ]
    title = f"{len(rows)} order(s), newest first (order ids: --json)"
    console.print(_table(title, ["when (UTC)", "qty", "title", "authors"], table_rows))


# --- check -------------------------------------------------------------------------------------


def _chunks(items: list[str], size: int = BATCH) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _order_gaps(settings: Settings) -> dict[str, Any]:
    """Orders whose customer is not in PostgreSQL or whose book is not in MongoDB."""
    orders = OrderStore(settings.redis_url)
    customers = CustomerStore(settings.postgres_dsn)
    books = BookStore(settings.mongo_uri, settings.mongo_db)
    try:
        refs: dict[str, tuple[str, str]] = {}
        ids = [i.decode() for i in orders.redis.sscan_iter(ALL_ORDERS, count=BATCH)]
        for chunk in _chunks(ids):
            pipe = orders.redis.pipeline(transaction=False)
            for order_id in chunk:
                pipe.hmget(order_key(order_id), "customer_id", "book_id")
            for order_id, (cid, bid) in zip(chunk, pipe.execute(), strict=True):
                if cid is not None and bid is not None:
                    refs[order_id] = (cid.decode(), bid.decode())
        known_customers: set[str] = set()
        for chunk in _chunks(sorted({c for c, _ in refs.values()})):
            known_customers |= customers.existing_ids(chunk)
        known_books = books.existing_ids({b for _, b in refs.values()})
    finally:
        for store in (orders, customers, books):
            store.close()
    no_customer = sorted(o for o, (c, _) in refs.items() if c not in known_customers)
    no_book = sorted(o for o, (_, b) in refs.items() if b not in known_books)
    return {
        "orders_checked": len(refs),
        "orders_without_customer": {"count": len(no_customer), "examples": no_customer[:EXAMPLES]},
        "orders_without_book": {"count": len(no_book), "examples": no_book[:EXAMPLES]},
    }


def _audit_gaps(settings: Settings) -> dict[str, Any]:
    """Every offset below the bridge's committed offset must be in the audit log."""
    audited: dict[tuple[str, int], set[int]] = defaultdict(set)
    lines = duplicates = 0
    try:
        for line in AuditLog(settings.audit_log_path).lines():
            lines += 1
            offsets = audited[(line["topic"], line["partition"])]
            duplicates += line["offset"] in offsets
            offsets.add(line["offset"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read audit log {settings.audit_log_path}: {exc}", 1) from exc
    partitions = []
    for p in _partition_offsets(settings):
        if p.committed is None:
            continue
        seen = audited.get((p.topic, p.partition), set())
        expected = p.committed - p.beginning
        covered = sum(1 for o in seen if p.beginning <= o < p.committed)
        missing = []
        offset = p.beginning
        while len(missing) < EXAMPLES and offset < p.committed and covered < expected:
            if offset not in seen:
                missing.append(offset)
            offset += 1
        partitions.append(
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "missing": expected - covered,
                "examples": missing,
            }
        )
    return {"audit_lines": lines, "audit_duplicates": duplicates, "partitions": partitions}


@app.command()
def check(as_json: bool = JsonOption) -> None:
    """Cross-store consistency; exits 1 when something is wrong.

    Orders whose customer (PostgreSQL) or book (MongoDB) is missing, and records the bridge has
    committed (Kafka offsets) that are missing from the audit log. Audit duplicates with the same
    coordinates are expected after a crash (at-least-once) and only reported. The bridge commits
    once the audit task is queued, so run it with the audit queue drained (see `stats`): records
    still in flight show up as not audited.
    """
    settings = load_settings()
    with _reporting():
        orders = _order_gaps(settings)
        audit = _audit_gaps(settings)
    unaudited = sum(p["missing"] for p in audit["partitions"])
    problems = {
        "orders without customer": orders["orders_without_customer"],
        "orders without book": orders["orders_without_book"],
        "committed but not audited": {
            "count": unaudited,
            "examples": [
                f"{p['topic']}[{p['partition']}]@{o}"
                for p in audit["partitions"]
                for o in p["examples"]
            ][:EXAMPLES],
        },
    }
    ok = all(p["count"] == 0 for p in problems.values())
    if as_json:
        _print_json({"ok": ok, "group": settings.bridge_group_id, **orders, "audit": audit})
    else:
        rows = [
            [name, p["count"], ", ".join(map(str, p["examples"]))] for name, p in problems.items()
        ]
        rows.append(["audit duplicates (tolerated)", audit["audit_duplicates"], ""])
        title = (
            f"Consistency: {orders['orders_checked']} orders, {audit['audit_lines']} audit lines"
        )
        Console().print(_table(title, ["check", "count", "examples"], rows))
        typer.echo("consistent" if ok else "INCONSISTENT")
    if not ok:
        raise typer.Exit(EXIT_INCONSISTENT)


# --- dead letters ------------------------------------------------------------------------------

dead_letters = typer.Typer(
    help="Records that could not be stored: list them, re-publish them after a fix.",
    no_args_is_help=True,
)
app.add_typer(dead_letters, name="dead-letters")


def _matches(dl: DeadLetterView, origin_topic: str | None, stage: str | None) -> bool:
    return (origin_topic is None or dl.headers.get("origin.topic") == origin_topic) and (
        stage is None or dl.headers.get("error.stage") == stage
    )


def _preview(raw: bytes | None, width: int = 60) -> str:
    text = "" if raw is None else raw.decode("utf-8", errors="replace")
    return text if len(text) <= width else text[: width - 1] + "…"


@dead_letters.command("list")
def dead_letters_list(
    limit: int = typer.Option(50, "--limit", min=1, help="newest dead letters per partition"),
    origin_topic: str | None = typer.Option(None, "--origin-topic", help="only from this topic"),
    stage: str | None = typer.Option(None, "--stage", help="only this error.stage"),
    as_json: bool = JsonOption,
) -> None:
    """The newest dead letters: where each came from, at which stage and why."""
    settings = load_settings()
    with _reporting():
        letters = [
            dl
            for dl in _read_dead_letters(settings, last=limit)
            if _matches(dl, origin_topic, stage)
        ]
    if as_json:
        _print_json([dl.to_json() for dl in letters])
        return
    rows = [
        [
            f"{dl.partition}:{dl.offset}",
            dl.origin,
            dl.headers.get("error.stage"),
            dl.headers.get("error.reason"),
            _preview(dl.value),
        ]
        for dl in letters
    ]
    columns = ["dead letter", "origin", "stage", "reason", "value"]
    Console().print(_table(f"{len(rows)} dead letter(s)", columns, rows))


def _coordinate(raw: str) -> tuple[int, int]:
    partition, sep, offset = raw.partition(":")
    try:
        if sep:
            return int(partition), int(offset)
    except ValueError:
        pass
    raise typer.BadParameter(f"{raw!r}: expected PARTITION:OFFSET of a dead letter, e.g. 0:42")


@dead_letters.command("replay")
def dead_letters_replay(
    at: Annotated[
        list[str] | None,
        typer.Option(
            "--at", help="PARTITION:OFFSET of a dead letter (as `list` shows); repeatable"
        ),
    ] = None,
    origin_topic: str | None = typer.Option(None, "--origin-topic", help="all from this topic"),
    stage: str | None = typer.Option(None, "--stage", help="all with this error.stage"),
    replay_all: bool = typer.Option(False, "--all", help="every dead letter"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be re-published"),
    as_json: bool = JsonOption,
) -> None:
    """Re-publish dead letters to their origin topic (raw bytes and key unchanged), after a fix.

    The stores are idempotent, so replaying twice does no harm; a record that is still invalid
    comes back as a new dead letter.
    """
    coords = [_coordinate(c) for c in at or []]
    if not (coords or origin_topic or stage or replay_all):
        raise typer.BadParameter("choose what to replay: --at, --origin-topic, --stage or --all")
    settings = load_settings()
    with _reporting():
        ranges = None
        if coords:
            ranges = {}
            for p, o in coords:
                lo, hi = ranges.get(p, (o, o + 1))
                ranges[p] = (min(lo, o), max(hi, o + 1))
        letters = [
            dl
            for dl in _read_dead_letters(settings, ranges=ranges)
            if _matches(dl, origin_topic, stage)
            and (not coords or (dl.partition, dl.offset) in set(coords))
        ]
        found = {(dl.partition, dl.offset) for dl in letters}
        unknown = [f"{p}:{o}" for p, o in coords if (p, o) not in found]
        if unknown:
            raise CliError(f"no such dead letter: {', '.join(unknown)}", EXIT_NOT_FOUND)
        bad = [dl for dl in letters if dl.headers.get("origin.topic") not in topics.ENTITY_TOPICS]
        if bad:
            origin = bad[0].headers.get("origin.topic")
            raise CliError(
                f"{bad[0].coordinates} has origin.topic {origin!r}, "
                f"not one of {', '.join(topics.ENTITY_TOPICS)}; not replayed",
                2,
            )
        if not dry_run:
            by_topic: dict[str, list[tuple[bytes | None, bytes | None, list]]] = defaultdict(list)
            for dl in letters:
                header = ("replayed.from", dl.coordinates.encode())
                by_topic[dl.headers["origin.topic"]].append((dl.key, dl.value, [header]))
            for topic, messages in by_topic.items():
                send_confirmed(settings, topic, messages)

    replayed = [
        {
            "dead_letter": f"{dl.partition}:{dl.offset}",
            "to": dl.headers["origin.topic"],
            "key": _text(dl.key),
        }
        for dl in letters
    ]
    if as_json:
        _print_json({"dry_run": dry_run, "replayed": replayed})
        return
    verb = "would re-publish" if dry_run else "re-published"
    rows = [[r["dead_letter"], r["to"], r["key"]] for r in replayed]
    Console().print(_table(f"{verb} {len(rows)} record(s)", ["dead letter", "to", "key"], rows))
