"""`python -m bookstore ...`: the operator CLI."""

from bookstore.cli import app

app()
