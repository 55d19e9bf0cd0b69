"""`python -m bookstore stats`: how much each store holds and how far behind the pipeline is."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

import typer

from bookstore import entities
from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_UNAVAILABLE,
    CliError,
    JsonOption,
    PartitionOffsets,
    build_table,
    console,
    partition_offsets,
    print_json,
    rabbitmq,
    unavailable_error,
)
from bookstore.config import Settings, load_settings


def _dead_letter_count(settings: Settings) -> int:
    from bookstore.kafka import offsets

    begins, ends = offsets(settings, [entities.topics(settings).dead_letters])
    return sum(ends[tp] - begins[tp] for tp in ends)


def _queue_depths(settings: Settings) -> dict[str, dict[str, int] | None]:
    """Ready messages and consumers per Celery queue and in `parked` (None: not declared yet),
    passively."""
    depths: dict[str, dict[str, int] | None] = {}
    with rabbitmq(settings) as conn:
        for queue in (*settings.entities.celery_queues, entities.PARKED_QUEUE):
            channel = conn.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue, passive=True)
                depths[queue] = {"messages": messages, "consumers": consumers}
            except conn.channel_errors:
                depths[queue] = None  # 404: no worker or bridge declared it yet
            finally:
                with suppress(Exception):
                    channel.close()
    return depths


def _audit_lines(settings: Settings) -> int:
    path = settings.entities.store(entities.AUDIT_QUEUE).open(settings).path
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
            error = unavailable_error(exc)
            if error is None:
                raise
            errors[name] = str(error)
    return results, errors


@app.command()
def stats(as_json: bool = JsonOption) -> None:
    """Counts per store, dead letters, audit lines, consumer lag per partition, queue depths."""
    settings = load_settings(stores=True)
    with entities.open_stores(settings) as stores:
        results, errors = _gather(
            {
                **{name: store.count for name, store in stores.items()},
                "audit_lines": lambda: _audit_lines(settings),
                "dead_letters": lambda: _dead_letter_count(settings),
                "lag": lambda: partition_offsets(settings),
                "queues": lambda: _queue_depths(settings),
            }
        )
        servers = {name: store.server for name, store in stores.items()}

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
        print_json(data)
    else:
        out = console()
        counts = [
            *([f"{name} ({server})", results.get(name)] for name, server in servers.items()),
            ["audit lines", results.get("audit_lines")],
            ["dead letters (Kafka)", results.get("dead_letters")],
        ]
        out.print(build_table("Stores", ["what", "count"], counts))
        if "lag" in results:
            rows = [[p.topic, p.partition, p.committed, p.end, p.lag] for p in lag]
            title = f"Consumer lag of group {settings.bridge_group_id}"
            out.print(build_table(title, ["topic", "partition", "committed", "end", "lag"], rows))
        if "queues" in results:
            rows = [
                [q, d["messages"], d["consumers"]] if d else [q, None, None]
                for q, d in results["queues"].items()
            ]
            out.print(build_table("Celery queues", ["queue", "messages", "consumers"], rows))
    for message in dict.fromkeys(errors.values()):
        typer.echo(f"error: {message}", err=True)
    if errors:
        raise typer.Exit(EXIT_UNAVAILABLE)
