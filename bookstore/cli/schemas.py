"""`python -m bookstore schemas`: each topic's message format as JSON Schema (bookstore.
message_schemas), printed, or written as files (docs/schemas/ holds the committed ones)."""

from __future__ import annotations

from pathlib import Path

import typer

from bookstore.cli.app import app
from bookstore.cli.common import CliError, print_json, reporting_errors
from bookstore.config import load_settings

EXIT_USAGE = 2
WriteOption = typer.Option(
    None, "--write", help="write NAME.vVERSION.json into this directory instead of printing"
)


@app.command()
def schemas(
    write: Path | None = WriteOption,
) -> None:
    """Each topic's message format as JSON Schema: one document, topic -> schema. --write
    refuses to rewrite a version so that it refuses what it accepted (raise the version)."""
    from bookstore import message_schemas

    with reporting_errors():
        entities = load_settings().entities.rows
        if write is None:
            print_json({e.name: message_schemas.schema(e) for e in entities})
            return
        for entity in entities:
            try:
                typer.echo(message_schemas.write(entity, write))
            except ValueError as e:
                raise CliError(str(e), EXIT_USAGE) from None
            except OSError as e:
                raise CliError(f"{write}: {e.strerror}", EXIT_USAGE) from None
