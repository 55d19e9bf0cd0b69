"""The CLI refuses a user's mistake before it reaches any server: exit 2, one clear message,
never a traceback (no server runs in this tier, so reaching one would fail differently)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bookstore.cli import app

MISTAKES = {
    "a customer id that is no UUID": (["history", "not-a-uuid"], "is not a customer id"),
    "a limit below one": (
        ["history", "6f1c2f4e-8a43-4f0e-9a1b-0c6d1e2f3a4b", "--limit", "0"],
        "greater than or equal to 1",
    ),
    "a negative count": (["generate", "--customers", "-1"], "--customers"),
    "rebuild without a target": (["rebuild"], "either --into NAME"),
    "a namespace with a bad name": (["rebuild", "--into", "no spaces"], "no spaces"),
    "a namespace without its Redis database": (
        ["rebuild", "--into", "ns"],
        "the redis store needs --redis-db",
    ),
    "a namespace on the live Redis database": (
        ["verify", "--namespace", "ns", "--redis-db", "1", "--store", "redis"],
        "Redis database 1 is the live one",
    ),
    "a namespace named like the live database": (
        ["rebuild", "--into", "bookstore_test", "--store", "mongo"],
        "namespace 'bookstore_test' is the live mongo one",
    ),
    "replay without a choice": (["dead-letters", "replay"], "choose what to replay"),
    "a dead letter's position misspelt": (
        ["dead-letters", "replay", "--at", "x"],
        "PARTITION:OFFSET",
    ),
    "requeue without a choice": (["parked", "requeue"], "choose what to requeue"),
    "a store that does not exist": (["verify", "--store", "nowhere"], "nowhere"),
}


@pytest.fixture(autouse=True)
def no_server(monkeypatch):
    """Every server at an address nothing listens on: a mistake that got through fails with
    exit 4 instead of touching the servers a developer runs (live: `bookstore_test`, Redis 1)."""
    for name, url in {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "POSTGRES_DSN": "postgresql://bookstore@127.0.0.1:1/bookstore_test",
        "MONGO_URI": "mongodb://127.0.0.1:1",
        "MONGO_DB": "bookstore_test",
        "REDIS_URL": "redis://127.0.0.1:1/1",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",
    }.items():
        monkeypatch.setenv(name, url)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_is_a_usage_error(mistake):
    args, words = MISTAKES[mistake]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # rich's error box unwrapped
    assert words in text and "Traceback" not in text
