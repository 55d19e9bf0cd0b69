"""What the operator commands share: exit codes, one-line error reporting, output, Kafka reads.

Every command reads the stores through their own modules (bookstore.stores.*), prints a table or,
with --json, one JSON document on stdout. A server that cannot be reached or an unknown id gives
one line on stderr and a distinct exit code, never a traceback:

    0 ok · 1 check found an inconsistency · 2 usage error · 3 unknown id · 4 a server is unreachable
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from bookstore import entities
from bookstore.config import Settings
from bookstore.entities import load_table
from bookstore.errors import Unavailable, raised_by
from bookstore.kafka import new_consumer

if TYPE_CHECKING:  # the clients are imported by the commands that use them: --help needs none
    from kafka import KafkaConsumer
    from kombu import Connection
    from rich.table import Table

EXIT_INCONSISTENT = 1
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4

JsonOption = typer.Option(False, "--json", help="one JSON document on stdout, for scripts")


class CliError(Exception):
    """A failure the operator can act on: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for noise in (" (configured timeouts", ", Timeout:"):  # pymongo's long suffixes
        text = text.split(noise)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unavailable_error(exc: BaseException) -> CliError | None:
    """Name the server behind a connection failure (URLs are never printed: they hold passwords)."""
    if isinstance(exc, Unavailable):
        return CliError(one_line(exc), EXIT_UNAVAILABLE)
    for store in load_table().loaded_stores():
        if store.classify(exc) is not None:  # its driver's failure
            setting = getattr(store, "configured_by", "")  # the variable naming its server
            where = f"{store.server} ({setting})" if setting else store.server
            return CliError(f"{where}: {one_line(exc)}", EXIT_UNAVAILABLE)
    if raised_by(exc, "kafka.errors", "KafkaError"):
        return CliError(f"Kafka: {one_line(exc)}", EXIT_UNAVAILABLE)
    return None


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn failures into one stderr line and an exit code."""
    try:
        yield
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except Exception as exc:
        error = unavailable_error(exc)
        if error is None:
            raise
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.code) from None


def console(**options: Any) -> Any:
    """A rich Console (rich is imported by the commands that print, not by --help)."""
    from rich.console import Console

    return Console(**options)


def progress(disable: bool = False) -> Any:
    """The commands' progress bar, on stderr (stdout stays the result's)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        disable=disable,
    )


def print_report(title: str, columns: list[str], rows: list[list[Any]], notes: list[str]) -> None:
    """A table, then a line per note (printed as they are: they hold data, not markup)."""
    out = console()
    out.print(build_table(title, columns, rows))
    for note in notes:
        out.print(f"  {note}", markup=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def build_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    from rich.table import Table

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


# --- RabbitMQ ----------------------------------------------------------------------------------


@contextmanager
def rabbitmq(settings: Settings) -> Iterator[Connection]:
    """A connection to the Celery broker (with publisher confirms); a broker that cannot be
    reached is a CliError (exit 4), named without its URL."""
    from kombu.exceptions import KombuError

    from bookstore.broker import connect, reach

    conn = connect(settings)
    try:
        yield reach(conn)
    except (OSError, KombuError, *conn.connection_errors) as exc:
        raise CliError(f"RabbitMQ (CELERY_BROKER_URL): {one_line(exc)}", EXIT_UNAVAILABLE) from exc
    finally:
        conn.release()


# --- Kafka -------------------------------------------------------------------------------------


@contextmanager
def kafka_consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    """A group-less consumer for reading offsets and records (never commits anything)."""
    consumer = new_consumer(
        settings,
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


def partition_offsets(settings: Settings) -> list[PartitionOffsets]:
    """Every entity-topic partition: log start/end and the bridge group's committed offset."""
    from bookstore.kafka import group_offsets, offsets

    committed = group_offsets(settings, settings.bridge_group_id)  # reachable, or a clear error
    topics = entities.topics(settings).entities
    begins, ends = offsets(settings, topics)
    return [
        PartitionOffsets(
            tp.topic,
            tp.partition,
            begins[tp],
            ends[tp],
            committed[tp] if committed.get(tp, -1) >= 0 else None,
        )
        for tp in sorted(begins, key=lambda tp: (topics.index(tp.topic), tp))
    ]
