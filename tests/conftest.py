"""Both tiers: the tests' configuration, set before anything reads it."""

from __future__ import annotations

import os

# The tests share the local servers with a developer's running stack, but keep their data apart:
# their own PostgreSQL database, MongoDB database, Redis db and RabbitMQ vhost (where they purge
# the Celery queues). Kafka topics have fixed names (docs/contracts.md): every test reads them
# with a consumer group of its own that starts at their current end.
TEST_ENV = {
    "POSTGRES_DSN": "postgresql://bookstore:bookstore@localhost:5432/bookstore_test",
    "MONGO_DB": "bookstore_test",
    "REDIS_URL": "redis://localhost:6379/1",
    "CELERY_BROKER_URL": "amqp://guest:guest@localhost:5672/bookstore_test",
    "BRIDGE_GROUP_ID": "bookstore-bridge-test",
    # Never call out of the machine from tests: a closed loopback port makes every process the
    # tests start (beat, generate workers) use the offline Faker fallback at once.
    "GOOGLE_BOOKS_BASE_URL": "http://127.0.0.1:9/books/v1",
    # a developer's .env must not reach the tests or the processes they start
    "BOOKSTORE_ENV_FILE": "",
}
os.environ.update(TEST_ENV)
