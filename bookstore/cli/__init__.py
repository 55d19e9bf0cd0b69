"""The operator CLI; each submodule registers its commands on the shared Typer app."""

# ruff: noqa: F401, I001
# Import order is registration order, which is the order `--help` lists the commands in.
from bookstore.cli import generate, stats, history, check, deadletters, parked, queues
from bookstore.cli import topics, rebuild, verify, schemas, certs
from bookstore.cli.app import app

__all__ = ["app"]
