"""`python -m bookstore parked list | requeue`: tasks held in the `parked` queue.

A task lands there when it failed for a reason about none of its records and retrying did not
help (a bug, a misconfigured server), or when a worker rejected it (an unknown task name): RabbitMQ
dead-letters the message, unchanged, from its queue. Nothing there runs until an operator has
fixed the cause and requeues it; the reason is in the worker's log and in Flower (by task id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_NOT_FOUND,
    CliError,
    JsonOption,
    build_table,
    console,
    print_json,
    rabbitmq,
    reporting_errors,
)
from bookstore.config import load_settings

if TYPE_CHECKING:
    from kombu.message import Message


@dataclass(frozen=True)
class ParkedTask:
    task_id: str
    task: str
    queue: str  # where it came from, and where `requeue` sends it back
    records: int | None  # records in a persistence or audit batch
    retries: int
    parked_at: datetime | None
    why: str  # RabbitMQ's reason (the task's own is in the worker log and Flower)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "parked_at": self.parked_at and self.parked_at.isoformat()}


def _describe(message: Message) -> ParkedTask:
    headers = message.headers or {}
    deaths = headers.get("x-death") or [{}]
    try:
        args = json.loads(message.body)[0]
        batch = args[0] if args else None  # lines (bookstore.records), or wire dicts
        records = batch.count("\n") if isinstance(batch, str) else _length(batch)
    except (ValueError, TypeError, IndexError, KeyError):
        records = None
    when = deaths[0].get("time")
    return ParkedTask(
        task_id=str(headers.get("id", "?")),
        task=str(headers.get("task", "?")),
        queue=str(deaths[0].get("queue") or message.delivery_info.get("routing_key") or "?"),
        records=records,
        retries=int(headers.get("retries") or 0),
        parked_at=when if isinstance(when, datetime) else None,
        why=str(deaths[0].get("reason", "?")),
    )


def _length(batch: Any) -> int | None:
    return len(batch) if isinstance(batch, list) else None


parked = typer.Typer(
    help="Tasks that failed for a reason about none of their records: list, requeue after a fix.",
    no_args_is_help=True,
)
app.add_typer(parked, name="parked")


@parked.command("list")
def parked_list(
    limit: int = typer.Option(100, "--limit", min=1, help="at most this many, oldest first"),
    as_json: bool = JsonOption,
) -> None:
    """The parked tasks: id, task, the queue they came from, records, when and how often tried.

    Listing takes nothing away: every message goes back to the queue as it was.
    """
    from bookstore.broker import PARKED

    settings = load_settings()
    with reporting_errors(), rabbitmq(settings) as conn:
        channel = conn.channel()
        queue = PARKED(channel)
        queue.declare()
        found = []
        while len(found) < limit and (message := queue.get(no_ack=False)) is not None:
            found.append(_describe(message))
        channel.close()  # unacknowledged: all of them stay parked, in order
    if as_json:
        print_json([p.to_json() for p in found])
        return
    rows = [[p.task_id, p.task, p.queue, p.records, p.retries, p.parked_at, p.why] for p in found]
    columns = ["task id", "task", "queue", "records", "retries", "parked at", "why"]
    console().print(build_table(f"{len(rows)} parked task(s)", columns, rows))
    if rows:
        typer.echo("the failure of each is in the worker's log and in Flower, by task id")


@parked.command("requeue")
def parked_requeue(
    task_id: Annotated[
        list[str] | None,
        typer.Option("--id", help="a parked task's id (as `list` shows); repeatable"),
    ] = None,
    queue: str | None = typer.Option(None, "--queue", help="every task parked from this queue"),
    requeue_all: bool = typer.Option(False, "--all", help="every parked task"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be requeued"),
    as_json: bool = JsonOption,
) -> None:
    """Send parked tasks back to the queue they came from, unchanged but for a fresh retry count,
    after the cause was fixed. Each leaves `parked` only once RabbitMQ confirmed its copy."""
    wanted = set(task_id or [])
    if not (wanted or queue or requeue_all):
        raise typer.BadParameter("choose what to requeue: --id, --queue or --all")
    from bookstore.broker import PARKED

    settings = load_settings()
    moved: list[ParkedTask] = []
    with reporting_errors(), rabbitmq(settings) as conn:
        channel = conn.channel()
        PARKED(channel).declare()
        producer = conn.Producer(channel)
        while (message := PARKED(channel).get(no_ack=False)) is not None:
            task = _describe(message)
            if not (requeue_all or task.task_id in wanted or task.queue == queue):
                continue  # left unacknowledged: back in `parked` when the channel closes
            if not dry_run:
                headers = {k: v for k, v in (message.headers or {}).items() if k != "x-death"}
                producer.publish(
                    message.body,
                    exchange=task.queue,  # each task queue has a direct exchange of its name
                    routing_key=task.queue,
                    headers={**headers, "retries": 0},
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    delivery_mode=2,
                )
                message.ack()
            moved.append(task)
        channel.close()
        unknown = wanted - {t.task_id for t in moved}
        if unknown:
            raise CliError(f"no parked task with id {', '.join(sorted(unknown))}", EXIT_NOT_FOUND)
    if as_json:
        print_json({"dry_run": dry_run, "requeued": [t.to_json() for t in moved]})
        return
    verb = "would requeue" if dry_run else "requeued"
    rows = [[t.task_id, t.task, t.queue, t.records] for t in moved]
    columns = ["task id", "task", "to queue", "records"]
    console().print(build_table(f"{verb} {len(rows)} task(s)", columns, rows))
