"""`python -m bookstore rebuild`: refill stores from the topics, through the workers' own code
(into a namespace next to the live stores, or in place with --yes); resumable. The log is the
source of truth (docs/source-of-truth.md). Exit 0 / 2 / 4."""

from __future__ import annotations

import typer

from bookstore.cli.app import app
from bookstore.cli.common import JsonOption, print_json, print_report, progress, reporting_errors
from bookstore.cli.stores import STORE_OPTION, chosen, in_namespace, with_namespace_options
from bookstore.config import load_settings


@app.command()
@with_namespace_options
def rebuild(
    store: str = STORE_OPTION,
    into: str = typer.Option(None, "--into", help="a namespace next to the live stores"),
    yes: bool = typer.Option(False, "--yes", help="replace the live stores (no --into)"),
    from_start: bool = typer.Option(
        False, "--from-start", help="empty the store and read from the first offset again"
    ),
    as_json: bool = JsonOption,
    **options: object,
) -> None:
    """Refill stores from the topics, through the workers' own code; resumable (each store
    records how far it has read)."""
    from bookstore import dead_letter_topic
    from bookstore.kafka import check_reachable
    from bookstore.rebuild import rebuild as run

    if (into is None) == (not yes):
        raise typer.BadParameter("either --into NAME (a namespace) or --yes (the live stores)")
    live = load_settings(stores=True)
    stores = chosen(store, tuple(s.name for s in live.entities.stores))
    target = in_namespace(live, into, options, stores)
    summaries = []
    with reporting_errors():
        check_reachable(live)
        if into is not None:
            in_namespace(live, into, options, stores, create=True)
        # what the pipeline dead-lettered, read once (the audit log keeps every record anyway)
        judged = [s for s in stores if not live.entities.store(s).every_record]
        refused = dead_letter_topic.origins(live) if judged else set()
        with progress(disable=as_json) as bar:
            for name in stores:
                task = bar.add_task(name, total=None)
                summary = run(
                    target,
                    name,
                    from_start,
                    refused,
                    on_start=lambda total, t=task: bar.update(t, total=total),
                    on_batch=lambda n, t=task: bar.advance(t, n),
                )
                # offsets compaction removed were counted in the total, never read
                bar.update(task, total=summary.read, completed=summary.read)
                summaries.append(summary)
    if as_json:
        print_json([{**vars(s), "records_per_second": round(s.rate)} for s in summaries])
        return
    rows = [
        [
            s.store,
            s.read,
            s.stored,
            s.dead_letters,
            f"{s.seconds:.1f}",
            f"{s.rate:,.0f}",
            "resumed" if s.resumed else "from the first offset",
        ]
        for s in summaries
    ]
    print_report(
        f"Rebuilt {f'namespace {into}' if into else 'the live stores'}",
        ["store", "read", "stored", "dead letters", "seconds", "records/s", "started"],
        rows,
        [f"{s.store}: dead letter {example}" for s in summaries for example in s.examples],
    )
