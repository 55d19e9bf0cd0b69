"""The Typer application every CLI command registers on."""

import typer

app = typer.Typer(
    name="python -m bookstore",
    help="Livros & Dados operator CLI: generate data, inspect the stores, replay dead letters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
