"""`python -m bookstore queues migrate`: bring the Celery queues of an earlier release to this one.

Every queue is now a quorum queue with a topic exchange (bookstore/broker.py); RabbitMQ cannot
change an existing queue's type. Workers, beat and the bridge replace an empty queue of an
earlier release by themselves at start-up, and refuse to start while one holds tasks: this
command moves those tasks into the new queues, losing none.
"""

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
    rabbitmq,
    reporting_errors,
)
from bookstore.config import load_settings

queues = typer.Typer(help="The Celery queues in RabbitMQ.", no_args_is_help=True)
app.add_typer(queues, name="queues")


@queues.command("migrate")
def queues_migrate(as_json: bool = JsonOption) -> None:
    """Move the tasks of an earlier release's queues (classic queues) into this release's
    (quorum queues), every one confirmed by RabbitMQ before it leaves its old queue. Stop the
    earlier release's workers, beat and bridge first; safe to run again after an interruption,
    and harmless when there is nothing to migrate."""
    from bookstore.broker import QueueMigrationNeeded, all_queues, migrate

    settings = load_settings()
    say = (lambda line: None) if as_json else typer.echo
    held = {}
    with reporting_errors(), rabbitmq(settings) as conn:
        for queue in all_queues(settings.entities):
            try:
                held[queue.name] = migrate(conn, queue, say)
            except QueueMigrationNeeded as exc:
                raise CliError(str(exc), EXIT_INCONSISTENT) from exc
    if as_json:
        print_json({"queues": held})
        return
    rows = [[name, tasks] for name, tasks in held.items()]
    console().print(build_table("quorum queues", ["queue", "messages"], rows))
