"""Generation tasks (queue `generate`), scheduled by beat_schedule.py.

Each task returns only after Kafka confirmed its messages. A Kafka or Redis outage is retried
with the one backoff until the tick expires (beat gives each one interval); see tasks/policy.py.
"""

from __future__ import annotations

from typing import Any

from bookstore.config import Settings
from tasks import app, per_process


def _open_generator(settings: Settings) -> Any:
    """Redis (its registry of ids) and Kafka load when a worker first generates, never where the
    tasks are only named (beat, Flower)."""
    from bookstore.generator import Generator

    return Generator(settings)


_generator = per_process(_open_generator)


@app.task
def generate_customers(n: int) -> int:
    return _generator().customers(n)


@app.task
def generate_books(n: int) -> dict[str, int]:
    google, faker = _generator().books(n)
    return {"google": google, "faker": faker}


@app.task
def generate_orders(n: int) -> int:
    return _generator().orders(n)
