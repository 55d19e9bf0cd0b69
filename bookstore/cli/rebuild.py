"""`topics`, `rebuild` and `verify`: the log is the source of truth (README).

`topics` shows and applies what the topics must keep; `rebuild` refills stores from the topics
(into a namespace next to the live stores, or in place with --yes); `verify` proves stores equal
the log. All three follow the CLI's contract: --json, exit 0 / 1 (differences) / 2 / 4.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_INCONSISTENT,
    CliError,
    JsonOption,
    build_table,
    console,
    print_json,
    print_report,
    progress,
    reporting_errors,
)
from bookstore.config import Settings, load_settings
from bookstore.entities import ENTITIES

# every entity's store (by its queue's name), the audit log, or all of them
StoreChoice = StrEnum(
    "StoreChoice", {**{e.queue: e.queue for e in ENTITIES}, "audit": "audit", "all": "all"}
)


STORE_OPTION = typer.Option("all", "--store", help="which store")
REDIS_DB_OPTION = typer.Option(
    None, "--redis-db", min=0, help="the namespace's Redis database (Redis numbers them)"
)


def _stores(choice: StoreChoice, every: tuple[str, ...]) -> list[str]:
    """The stores chosen; `all`: `every` store the command knows."""
    return list(every) if choice == "all" else [choice.value]


def _namespace(
    live: Settings, name: str | None, redis_db: int | None, stores: list[str]
) -> Settings:
    from bookstore.namespace import NamespaceError, namespace_settings

    if name is None:
        return live
    try:
        return namespace_settings(live, name, redis_db, stores)
    except NamespaceError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def topics(
    apply: bool = typer.Option(
        False, "--apply", help="set what differs (compaction, added copies included)"
    ),
    force: bool = typer.Option(
        False, "--force", help="with --apply: compact even topics holding records without a key"
    ),
    as_json: bool = JsonOption,
) -> None:
    """What each topic keeps (compaction, retention, copies) against what the log must keep.

    By default every record of customers and books is kept and records without a key are
    accepted (as the original system sends them). With TOPIC_COMPACTION=true (in every
    process's environment), --apply compacts them: Kafka then refuses every record without a
    key, so do it only when every producer keys its records by id. A topic with fewer copies
    than KAFKA_REPLICATION_FACTOR (created before the cluster grew) gets them with --apply
    (Kafka copies its data; the command waits until it is done).
    """
    from bookstore.kafka import admin_client, count_keyless
    from bookstore.topic_config import (
        add_copies,
        align_configs,
        current_configs,
        ensure_topics,
        replica_counts,
        replication,
        topic_configs,
    )

    settings = load_settings()
    applied: dict[str, dict[str, str]] = {}
    with reporting_errors():
        state = ensure_topics(settings)
        admin = admin_client(settings)
        try:
            copies, min_insync = replication(settings, len(admin.describe_cluster()["brokers"]))
            wanted = topic_configs(settings, min_insync)
            if apply:
                keyless = {t: n for t in state.uncompacted if (n := count_keyless(settings, t))}
                if keyless and not force:
                    held = ", ".join(f"{t}: {n}" for t, n in keyless.items())
                    raise CliError(
                        f"records without a key ({held}) would be discarded by compaction: "
                        "re-publish them with their id as key, or --force (the audit log "
                        "keeps them)",
                        EXIT_INCONSISTENT,
                    )
                with progress(disable=as_json) as bar:
                    task = bar.add_task("copying", total=None)
                    added = add_copies(
                        admin, state.under_replicated, copies, lambda n: bar.update(task, total=n)
                    )
                applied = {t: {REPLICAS: str(copies)} for t in added}
                for topic, configs in align_configs(
                    admin,
                    wanted,
                    current_configs(admin, wanted),
                    replica_counts(admin, wanted),
                    compact=True,
                ).items():
                    applied.setdefault(topic, {}).update(configs)
            now = current_configs(admin, wanted)
            held_copies = replica_counts(admin, wanted)
        finally:
            admin.close()
    rows = []
    for topic, configs in wanted.items():
        rows.append([topic, REPLICAS, str(held_copies.get(topic)), str(copies)])
        for name, value in configs.items():
            rows.append([topic, name, now[topic].get(name), value])
    differ = [r for r in rows if r[2] != r[3]]
    if as_json:
        print_json(
            {
                "topics": [
                    dict(zip(("topic", "config", "now", "wanted"), r, strict=True)) for r in rows
                ],
                "applied": applied,
                "differences": len(differ),
            }
        )
    else:
        out = console()
        out.print(build_table("Topic configuration", ["topic", "config", "now", "wanted"], rows))
        if differ:
            out.print(
                "[yellow]differs from what the log must keep: python -m bookstore topics --apply"
            )
    if differ:
        raise typer.Exit(EXIT_INCONSISTENT)


REPLICAS = "replicas"  # the copies of each partition, shown as one more row per topic


@app.command()
def rebuild(
    store: StoreChoice = STORE_OPTION,
    into: str = typer.Option(None, "--into", help="a namespace next to the live stores"),
    redis_db: int = REDIS_DB_OPTION,
    yes: bool = typer.Option(False, "--yes", help="replace the live stores (no --into)"),
    from_start: bool = typer.Option(
        False, "--from-start", help="empty the store and read from the first offset again"
    ),
    as_json: bool = JsonOption,
) -> None:
    """Refill stores from the topics, through the workers' own code; resumable."""
    from bookstore import dead_letter_topic
    from bookstore.kafka import check_reachable
    from bookstore.namespace import create_namespace
    from bookstore.rebuild import STORES
    from bookstore.rebuild import rebuild as run

    stores = _stores(store, STORES)
    if (into is None) == (not yes):
        raise typer.BadParameter("either --into NAME (a namespace) or --yes (the live stores)")
    live = load_settings()
    target = _namespace(live, into, redis_db, stores)
    summaries = []
    with reporting_errors():
        check_reachable(live)
        if into is not None:
            create_namespace(live, into, stores)
        # what the pipeline dead-lettered, read once (the audit log keeps every record anyway)
        refused = dead_letter_topic.origins(live) if stores != ["audit"] else set()
        with progress(disable=as_json) as bar:
            for name in stores:
                task = bar.add_task(name, total=None)
                summary = run(
                    target,
                    name,
                    into or "live",
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


@app.command()
def verify(
    store: StoreChoice = STORE_OPTION,
    namespace: str = typer.Option(None, "--namespace", help="a namespace, not the live stores"),
    redis_db: int = REDIS_DB_OPTION,
    examples: int = typer.Option(5, "--examples", min=0, help="differences to show per store"),
    as_json: bool = JsonOption,
) -> None:
    """Compare stores with the log: missing, extra, different entries (exit 1 if any)."""
    from bookstore.kafka import check_reachable
    from bookstore.verify import stores as comparable
    from bookstore.verify import verify as run

    known = comparable()
    stores = _stores(store, known)
    if not set(stores) <= set(known):
        raise typer.BadParameter(
            f"verify compares {', '.join(known)} (or all): {store.value} has no canonical form "
            "(its store class has no form/entries)",
            param_hint="--store",
        )
    target = _namespace(load_settings(), namespace, redis_db, stores)
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
