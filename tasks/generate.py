"""Generation tasks (queue `generate`), scheduled by beat_schedule.py.

Each task returns only after Kafka confirmed its messages. A Kafka or Redis outage is retried
with the one backoff until the tick expires (beat gives each one interval); see tasks/policy.py.
"""

from __future__ import annotations

from bookstore.generator import shared_generator
from tasks import app


@app.task
def generate_customers(n: int) -> int:
    return shared_generator().customers(n)


@app.task
def generate_books(n: int) -> dict[str, int]:
    google, faker = shared_generator().books(n)
    return {"google": google, "faker": faker}


@app.task
def generate_orders(n: int) -> int:
    return shared_generator().orders(n)
