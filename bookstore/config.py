"""Configuration from the environment, with defaults that point at the local stack (README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default) or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"configuration error: {name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"configuration error: {name}={raw!r} is not a number") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"configuration error: {name}={raw!r} is not true or false")


def _bool(name: str, default: bool):
    return field(default_factory=lambda: _env_bool(name, default))


def _str(name: str, default: str):
    return field(default_factory=lambda: _env(name, default))


def _int(name: str, default: int):
    return field(default_factory=lambda: _env_int(name, default))


def _float(name: str, default: float):
    return field(default_factory=lambda: _env_float(name, default))


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = _str("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    kafka_partitions: int = _int("KAFKA_PARTITIONS", 3)
    postgres_dsn: str = _str(
        "POSTGRES_DSN", "postgresql://bookstore:bookstore@localhost:5432/bookstore"
    )
    mongo_uri: str = _str("MONGO_URI", "mongodb://localhost:27017")
    mongo_db: str = _str("MONGO_DB", "bookstore")
    redis_url: str = _str("REDIS_URL", "redis://localhost:6379/0")
    celery_broker_url: str = _str("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//")
    audit_log_path: str = _str("AUDIT_LOG_PATH", "messages.log")
    google_books_api_key: str = field(
        default_factory=lambda: os.environ.get("GOOGLE_BOOKS_API_KEY", ""), repr=False
    )
    bridge_group_id: str = _str("BRIDGE_GROUP_ID", "bookstore-bridge")
    bridge_batch_size: int = _int("BRIDGE_BATCH_SIZE", 500)
    bridge_batch_wait_ms: int = _int("BRIDGE_BATCH_WAIT_MS", 200)
    bridge_batch_max_bytes: int = _int("BRIDGE_BATCH_MAX_BYTES", 4 * 1024 * 1024)
    # Publish a batch as soon as Kafka has nothing more for it (lowest latency at low load); off:
    # every batch waits until full or BRIDGE_BATCH_WAIT_MS (fewer, larger tasks).
    bridge_flush_when_idle: bool = _bool("BRIDGE_FLUSH_WHEN_IDLE", True)
    bridge_max_queue_depth: int = _int("BRIDGE_MAX_QUEUE_DEPTH", 200)
    # How long the group waits for a bridge that stopped answering before its partitions move on
    # (kafka-python's default, 45 s, is how long consumption stalled after a bridge was killed);
    # 6 s is the least a broker accepts by default (group.min.session.timeout.ms).
    bridge_session_timeout_ms: int = _int("BRIDGE_SESSION_TIMEOUT_MS", 6_000)
    # Prometheus metrics of the bridge (bridge/metrics.py); port 0 turns them off. In a
    # container, 0.0.0.0 lets Prometheus on the compose network scrape them (never published).
    bridge_metrics_addr: str = _str("BRIDGE_METRICS_ADDR", "127.0.0.1")
    bridge_metrics_port: int = _int("BRIDGE_METRICS_PORT", 9108)
    # Optional static group membership: a bridge restarted with the same id takes its partitions
    # back at once, without a rebalance. Must be unique per running bridge.
    bridge_instance_id: str = _str("BRIDGE_INSTANCE_ID", "")
    # What the topics keep (bookstore.kafka.topic_configs): -1 is forever. Compacted topics
    # keep every record for at least the lag, then the latest per key.
    orders_retention_ms: int = _int("ORDERS_RETENTION_MS", -1)
    dead_letters_retention_ms: int = _int("DEAD_LETTERS_RETENTION_MS", -1)
    topic_compaction_lag_ms: int = _int("TOPIC_COMPACTION_LAG_MS", 7 * 24 * 3600 * 1000)
    # Bad input (docs/contracts.md): a larger record value is a dead letter (stage validate).
    record_max_bytes: int = _int("RECORD_MAX_BYTES", 1024 * 1024)
    # The one backoff for everything that waits for a server: tasks, the bridge, generation.
    retry_max_seconds: float = field(
        default_factory=lambda: _env_float(
            "RETRY_MAX_SECONDS", _env_float("STORE_RETRY_MAX_SECONDS", 30.0)
        )
    )
    # A task failing for a reason that is about none of its records is parked after this many
    # retries (a RabbitMQ dead-letter queue; `python -m bookstore parked`).
    park_after_retries: int = _int("PARK_AFTER_RETRIES", 8)
    # Generation (beat rates, Faker, Google Books client).
    generate_interval_seconds: float = _float("GENERATE_INTERVAL_SECONDS", 5.0)
    generate_customers_per_tick: int = _int("GENERATE_CUSTOMERS_PER_TICK", 3)
    generate_books_per_tick: int = _int("GENERATE_BOOKS_PER_TICK", 2)
    generate_orders_per_tick: int = _int("GENERATE_ORDERS_PER_TICK", 10)
    faker_locale: str = _str("FAKER_LOCALE", "pt_BR")
    google_books_base_url: str = field(
        default_factory=lambda: _env(
            "GOOGLE_BOOKS_BASE_URL", "https://www.googleapis.com/books/v1"
        ).rstrip("/")
    )
    google_books_timeout_seconds: float = _float("GOOGLE_BOOKS_TIMEOUT_SECONDS", 10.0)
    google_books_max_attempts: int = _int("GOOGLE_BOOKS_MAX_ATTEMPTS", 4)
    google_books_backoff_seconds: float = _float("GOOGLE_BOOKS_BACKOFF_SECONDS", 1.0)
    google_books_cooldown_seconds: float = _float("GOOGLE_BOOKS_COOLDOWN_SECONDS", 60.0)

    def __post_init__(self) -> None:
        minimum = {
            "kafka_partitions": 1,
            "bridge_batch_size": 1,
            "bridge_batch_wait_ms": 0,
            "bridge_batch_max_bytes": 1024,
            "bridge_session_timeout_ms": 1000,
            "record_max_bytes": 1,
            "retry_max_seconds": 0.1,
            "park_after_retries": 0,
            "orders_retention_ms": -1,
            "dead_letters_retention_ms": -1,
            "topic_compaction_lag_ms": 0,
        }
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise SystemExit(
                    f"configuration error: {name.upper()}={getattr(self, name)} is out of range"
                )


_env_file_read = False


def read_env_file() -> None:
    """Fill in, once per process, what the environment does not set from `.env` in the working
    directory (`BOOKSTORE_ENV_FILE` names another; empty: none). The environment wins."""
    global _env_file_read
    if _env_file_read:
        return
    _env_file_read = True
    path = os.environ.get("BOOKSTORE_ENV_FILE", ".env")
    if not path or not os.path.isfile(path):
        return
    from dotenv import dotenv_values

    for key, value in dotenv_values(path).items():
        if value is not None:
            os.environ.setdefault(key, value)


def load_settings() -> Settings:
    """Read the environment (and `.env`) now: tests and processes may change it before."""
    read_env_file()
    return Settings()
