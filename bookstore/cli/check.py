"""`python -m bookstore check`: do the stores and the audit log agree with each other and Kafka?"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_INCONSISTENT,
    CliError,
    JsonOption,
    build_table,
    console,
    partition_offsets,
    print_json,
    reporting_errors,
)
from bookstore.config import Settings, load_settings
from bookstore.entities import AUDIT_QUEUE, BOOKS, CUSTOMERS, ORDERS, open_stores

EXAMPLES = 5  # ids shown per problem
BATCH = 1000


def _chunks(items: list[str], size: int = BATCH) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _order_gaps(settings: Settings) -> dict[str, Any]:
    """Orders whose customer is not in PostgreSQL or whose book is not in MongoDB."""
    with open_stores(settings, (ORDERS, CUSTOMERS, BOOKS)) as stores:
        refs = {order_id: (cid, bid) for order_id, cid, bid in stores[ORDERS].references(BATCH)}
        known_customers: set[str] = set()
        for chunk in _chunks(sorted({c for c, _ in refs.values()})):
            known_customers |= stores[CUSTOMERS].existing_ids(chunk)
        known_books = stores[BOOKS].existing_ids({b for _, b in refs.values()})
    no_customer = sorted(o for o, (c, _) in refs.items() if c not in known_customers)
    no_book = sorted(o for o, (_, b) in refs.items() if b not in known_books)
    return {
        "orders_checked": len(refs),
        "orders_without_customer": {"count": len(no_customer), "examples": no_customer[:EXAMPLES]},
        "orders_without_book": {"count": len(no_book), "examples": no_book[:EXAMPLES]},
    }


def _audit_gaps(settings: Settings) -> dict[str, Any]:
    """Every record the bridge committed must be in the audit log, from the log's first line of
    that partition on: offsets before it are counted apart (`before_log`), not as missing, since
    an audit file may have been rotated or a group may have started after the topic's start.
    Only offsets that hold a record count: an offset the audit log lacks is looked up in Kafka
    (compaction, retention and transaction markers leave offsets without a record)."""
    from kafka import TopicPartition

    from bookstore.kafka import offsets_held

    audit = settings.entities.store(AUDIT_QUEUE).open(settings)
    audited: dict[tuple[str, int], set[int]] = defaultdict(set)
    lines = duplicates = 0
    try:
        for line in audit.lines():
            lines += 1
            offsets = audited[(line["topic"], line["partition"])]
            duplicates += line["offset"] in offsets
            offsets.add(line["offset"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read audit log {audit.path}: {exc}", 1) from exc
    checked = []
    for p in partition_offsets(settings):
        if p.committed is None:
            continue
        seen = audited.get((p.topic, p.partition), set())
        start = max(p.beginning, min(seen, default=p.beginning))
        checked.append((p, start, seen, _spans(seen, start, p.committed)))
    held = offsets_held(
        settings, {TopicPartition(p.topic, p.partition): spans for p, _, _, spans in checked}
    )
    partitions = []
    for p, start, seen, _ in checked:
        missing = sorted(held[TopicPartition(p.topic, p.partition)] - seen)
        partitions.append(
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "before_log": start - p.beginning,
                "missing": len(missing),
                "examples": missing[:EXAMPLES],
            }
        )
    return {"audit_lines": lines, "audit_duplicates": duplicates, "partitions": partitions}


SPAN_GAP = 10_000  # offsets: two gaps closer than this are read from Kafka as one span


def _spans(seen: set[int], start: int, stop: int) -> list[tuple[int, int]]:
    """[a, b) spans covering every offset in [start, stop) that `seen` lacks, nearby gaps merged
    (reading a few audited records costs less than a seek)."""
    spans: list[tuple[int, int]] = []
    expected = start
    for offset in sorted(o for o in seen if start <= o < stop) + [stop]:
        if offset > expected:  # [expected, offset) not audited
            if spans and expected - spans[-1][1] < SPAN_GAP:
                spans[-1] = (spans[-1][0], offset)
            else:
                spans.append((expected, offset))
        expected = offset + 1
    return spans


@app.command()
def check(as_json: bool = JsonOption) -> None:
    """Cross-store consistency; exits 1 when something is wrong.

    Orders whose customer (PostgreSQL) or book (MongoDB) is missing, and records the bridge has
    committed (Kafka offsets) that are missing from the audit log, from its first line of each
    partition on (an audit file may be rotated). Audit duplicates with the same coordinates are
    expected after a crash (at-least-once) and only reported. The bridge commits
    once the audit task is queued, so run it with the audit queue drained (see `stats`): records
    still in flight show up as not audited.
    """
    settings = load_settings(stores=True)
    with reporting_errors():
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
        print_json({"ok": ok, "group": settings.bridge_group_id, **orders, "audit": audit})
    else:
        rows = [
            [name, p["count"], ", ".join(map(str, p["examples"]))] for name, p in problems.items()
        ]
        rows.append(["audit duplicates (tolerated)", audit["audit_duplicates"], ""])
        before = sum(p["before_log"] for p in audit["partitions"])
        rows.append(["offsets before the audit log's first line (not checked)", before, ""])
        title = (
            f"Consistency: {orders['orders_checked']} orders, {audit['audit_lines']} audit lines"
        )
        console().print(build_table(title, ["check", "count", "examples"], rows))
        typer.echo("consistent" if ok else "INCONSISTENT")
    if not ok:
        raise typer.Exit(EXIT_INCONSISTENT)
