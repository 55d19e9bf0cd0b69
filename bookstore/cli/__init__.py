"""The operator CLI; each submodule registers its commands on the shared Typer app."""

from bookstore.cli import generate, ops  # noqa: F401  (registers commands)
from bookstore.cli.app import app

__all__ = ["app"]
