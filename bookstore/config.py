"""Configuration from the environment, with defaults that point at the local stack (see SPEC)."""

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


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = field(
        default_factory=lambda: _env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    )
    kafka_partitions: int = field(default_factory=lambda: _env_int("KAFKA_PARTITIONS", 3))
    postgres_dsn: str = field(
        default_factory=lambda: _env(
            "POSTGRES_DSN", "postgresql://bookstore:bookstore@localhost:5432/bookstore"
        )
    )
    mongo_uri: str = field(default_factory=lambda: _env("MONGO_URI", "mongodb://localhost:27017"))
    mongo_db: str = field(default_factory=lambda: _env("MONGO_DB", "bookstore"))
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", "redis://localhost:6379/0"))
    celery_broker_url: str = field(
        default_factory=lambda: _env("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//")
    )
    audit_log_path: str = field(default_factory=lambda: _env("AUDIT_LOG_PATH", "messages.log"))
    google_books_api_key: str = field(
        default_factory=lambda: os.environ.get("GOOGLE_BOOKS_API_KEY", ""), repr=False
    )
    bridge_group_id: str = field(
        default_factory=lambda: _env("BRIDGE_GROUP_ID", "bookstore-bridge")
    )
    bridge_batch_size: int = field(default_factory=lambda: _env_int("BRIDGE_BATCH_SIZE", 500))
    bridge_batch_wait_ms: int = field(default_factory=lambda: _env_int("BRIDGE_BATCH_WAIT_MS", 200))
    bridge_max_queue_depth: int = field(
        default_factory=lambda: _env_int("BRIDGE_MAX_QUEUE_DEPTH", 200)
    )
    store_retry_max_seconds: float = field(
        default_factory=lambda: _env_float("STORE_RETRY_MAX_SECONDS", 30.0)
    )
    # Generation (beat rates, Faker, Google Books client).
    generate_interval_seconds: float = field(
        default_factory=lambda: _env_float("GENERATE_INTERVAL_SECONDS", 5.0)
    )
    generate_customers_per_tick: int = field(
        default_factory=lambda: _env_int("GENERATE_CUSTOMERS_PER_TICK", 3)
    )
    generate_books_per_tick: int = field(
        default_factory=lambda: _env_int("GENERATE_BOOKS_PER_TICK", 2)
    )
    generate_orders_per_tick: int = field(
        default_factory=lambda: _env_int("GENERATE_ORDERS_PER_TICK", 10)
    )
    faker_locale: str = field(default_factory=lambda: _env("FAKER_LOCALE", "pt_BR"))
    google_books_base_url: str = field(
        default_factory=lambda: _env(
            "GOOGLE_BOOKS_BASE_URL", "https://www.googleapis.com/books/v1"
        ).rstrip("/")
    )
    google_books_timeout_seconds: float = field(
        default_factory=lambda: _env_float("GOOGLE_BOOKS_TIMEOUT_SECONDS", 10.0)
    )
    google_books_max_attempts: int = field(
        default_factory=lambda: _env_int("GOOGLE_BOOKS_MAX_ATTEMPTS", 4)
    )
    google_books_backoff_seconds: float = field(
        default_factory=lambda: _env_float("GOOGLE_BOOKS_BACKOFF_SECONDS", 1.0)
    )
    google_books_cooldown_seconds: float = field(
        default_factory=lambda: _env_float("GOOGLE_BOOKS_COOLDOWN_SECONDS", 60.0)
    )


def load_settings() -> Settings:
    """Read the environment now (tests and processes may change it before start-up)."""
    return Settings()
