"""Both tiers: the tests' configuration, set before anything reads it."""

from __future__ import annotations

import os
import tempfile

from tests.support import TOPIC_PREFIX, on_vhost

# The tests share the local servers with a developer's running stack, but never touch its data:
# their own Kafka topics (a prefix: test.customers, ...), consumer groups, PostgreSQL database,
# MongoDB database, Redis db, RabbitMQ vhost (where they purge the Celery queues) and audit log.
# tests/unit/test_settings.py checks that every setting naming a place is moved here.
TEST_ENV = {
    "KAFKA_TOPIC_PREFIX": TOPIC_PREFIX,
    "AUDIT_LOG_PATH": os.path.join(tempfile.mkdtemp(prefix="bookstore-tests-"), "messages.log"),
    "POSTGRES_DSN": "postgresql://bookstore:bookstore@localhost:5432/bookstore_test",
    "MONGO_DB": "bookstore_test",
    "REDIS_URL": "redis://localhost:6379/1",
    # the servers the environment names (a cluster: `eval "$(scripts/services env)"`)
    "CELERY_BROKER_URL": on_vhost(
        os.environ.get("CELERY_BROKER_URL") or "amqp://guest:guest@localhost:5672//",
        "bookstore_test",
    ),
    "BRIDGE_GROUP_ID": "bookstore-bridge-test",
    # Never call out of the machine from tests: a closed loopback port makes every process the
    # tests start (beat, generate workers) use the offline Faker fallback at once.
    "GOOGLE_BOOKS_BASE_URL": "http://127.0.0.1:9/books/v1",
    # a developer's .env must not reach the tests or the processes they start
    "BOOKSTORE_ENV_FILE": "",
}
os.environ.update(TEST_ENV)
