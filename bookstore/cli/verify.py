"""`python -m bookstore verify`: prove stores equal the log (missing, extra, different
entries). Exit 0 / 1 (differences) / 2 / 4."""

from __future__ import annotations

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_INCONSISTENT,
    JsonOption,
    console,
    print_json,
    print_report,
    reporting_errors,
)
from bookstore.cli.stores import STORE_OPTION, chosen, in_namespace, with_namespace_options
from bookstore.config import load_settings


@app.command()
@with_namespace_options
def verify(
    store: str = STORE_OPTION,
    namespace: str = typer.Option(None, "--namespace", help="a namespace, not the live stores"),
    examples: int = typer.Option(5, "--examples", min=0, help="differences to show per store"),
    as_json: bool = JsonOption,
    **options: object,
) -> None:
    """Compare stores with the log: missing, extra, different entries (exit 1 if any)."""
    from bookstore.kafka import check_reachable
    from bookstore.verify import verify as run

    live = load_settings(stores=True)
    every = live.entities.stores
    known = tuple(s.name for s in every if s.verifiable)
    if store in {s.name for s in every} and store not in known:
        raise typer.BadParameter(
            f"verify compares {', '.join(known)} (or all): {store} has no canonical form "
            "(its row says verifiable=False)",
            param_hint="--store",
        )
    stores = chosen(store, known)
    target = in_namespace(live, namespace, options, stores)
    with reporting_errors():
        check_reachable(target)
        reports = run(target, stores, examples)
    differences = sum(r.differences for r in reports)
    if as_json:
        print_json({"stores": [vars(r) for r in reports], "differences": differences})
    else:
        rows = [
            [r.store, r.expected, r.checked, r.missing, r.extra, r.different, r.newer]
            for r in reports
        ]
        print_report(
            f"{f'namespace {namespace}' if namespace else 'the live stores'} against the log",
            ["store", "in the log", "checked", "missing", "extra", "different", "newer"],
            rows,
            [f"{r.store}: {example}" for r in reports for example in r.examples],
        )
        console().print("equal to the log" if not differences else f"{differences} difference(s)")
    if differences:
        raise typer.Exit(EXIT_INCONSISTENT)
