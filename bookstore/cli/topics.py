"""`python -m bookstore topics`: what each topic keeps (compaction, retention, copies) against
what the log must keep, and --apply to fix what differs. Exit 0 / 1 (differences) / 2 / 4."""

from __future__ import annotations

import typer

from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_INCONSISTENT,
    CliError,
    JsonOption,
    build_table,
    console,
    print_json,
    progress,
    reporting_errors,
)
from bookstore.config import load_settings

REPLICAS = "replicas"  # the copies of each partition, shown as one more row per topic


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
