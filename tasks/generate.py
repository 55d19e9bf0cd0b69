"""Generation tasks (queue `generate`), scheduled by beat_schedule.py.

Each task returns only after Kafka confirmed its messages; a Kafka or Redis failure raises so
Celery retries the task with exponential backoff.
"""

from __future__ import annotations

import redis
from kafka.errors import KafkaError

from bookstore.generate import shared_generator
from bookstore.kafka import KafkaUnavailable
from tasks import app

_RETRY = {
    "autoretry_for": (KafkaUnavailable, KafkaError, redis.RedisError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
}


@app.task(**_RETRY)
def generate_customers(n: int) -> int:
    return shared_generator().customers(n)


@app.task(**_RETRY)
def generate_books(n: int) -> dict[str, int]:
    google, faker = shared_generator().books(n)
    return {"google": google, "faker": faker}


@app.task(**_RETRY)
def generate_orders(n: int) -> int:
    return shared_generator().orders(n)
