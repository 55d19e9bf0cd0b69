"""Generation tasks (queue `generate`), scheduled by beat_schedule.py.

Each task returns only after Kafka confirmed its messages. A Kafka or Redis outage is retried
with the one backoff until the tick expires (beat gives each one interval); see tasks/policy.py.
"""

from __future__ import annotations

from bookstore.generator import Generator
from tasks import app, per_process

_generator = per_process(Generator)


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
