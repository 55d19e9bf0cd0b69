"""Configuration from the environment (and `.env`), with defaults that point at the local stack.

One typed, validated `Settings` (pydantic-settings): every numeric field has a range, and a bad
value is one `ConfigError` naming the variable, raised when a process starts (its entry point
prints it). Modules receive a `Settings`; only the entry points (the CLI, the bridge, the Celery
config edge `celeryconfig.py`) call `load_settings()`. Variables and defaults: docs/contracts.md.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bookstore.entities import EntityTable, TableError, load_table
from bookstore.setting_files import SettingFileError, with_setting_files

S = TypeVar("S", bound=BaseSettings)
MiB = 1024 * 1024
Milliseconds = Annotated[int, Field(ge=0, le=24 * 3600 * 1000)]
Retention = Annotated[int, Field(ge=-1)]  # -1: forever
Seconds = Annotated[float, Field(gt=0, le=24 * 3600)]
PerTick = Annotated[int, Field(ge=0, le=100_000)]


class ConfigError(ValueError):
    """A setting the process cannot run with; the message names the variable and the value."""


class Settings(BaseSettings):
    # Read from the environment only (`.env` has been merged into it by `load_settings`); an
    # empty variable means its default, as in a `.env` line `NAME=`.
    model_config = SettingsConfigDict(
        frozen=True, env_ignore_empty=True, extra="ignore", populate_by_name=True
    )
    settings_customise_sources = classmethod(with_setting_files)  # NAME_FILE=path

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_partitions: int = Field(3, ge=1, le=10_000)
    # Copies of every partition (0: min(3, the brokers in the cluster)), and how many of them
    # must hold a record before Kafka acknowledges it (0: 2 with three copies or more, else 1).
    kafka_replication_factor: int = Field(0, ge=0, le=16)
    kafka_min_insync_replicas: int = Field(0, ge=0, le=16)
    # Put before every topic's name (`test.` -> test.customers, test.dead-letters): a second
    # deployment, or the test suite, shares one Kafka without sharing its data.
    kafka_topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]{0,200}$")
    # The generator's registry of ids that exist (the orders store reads REDIS_URL too, into
    # its own settings). Each store's settings are its own: `stores` below.
    redis_url: str = Field("redis://localhost:6379/0", repr=False)  # URLs may hold passwords
    celery_broker_url: str = Field("amqp://guest:guest@localhost:5672//", repr=False)
    # TLS and authentication (docs/security.md); the defaults are the development stack's
    # plaintext on loopback. Kafka: SASL_SSL (SCRAM-SHA-512 over TLS, a user per component) or
    # SSL (a client certificate: the operator's, on the brokers' internal listener). The CA
    # files name the authority that signed the servers' certificates (empty: the system's).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_username: str = Field("", pattern=r"^[^,=]*$")  # SCRAM does not escape , and =
    kafka_sasl_password: str = Field("", repr=False, validate_default=True)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""  # PEM: the certificate (chain), then its key, or KAFKA_SSL_KEYFILE
    kafka_ssl_keyfile: str = ""
    # For an amqps:// CELERY_BROKER_URL: each node's certificate is checked against this CA and
    # against the address dialled (every node of a cluster, failover included).
    celery_broker_cafile: str = ""
    google_books_api_key: str = Field("", repr=False)
    bridge_group_id: str = "bookstore-bridge"
    bridge_batch_size: int = Field(500, ge=1, le=100_000)
    bridge_batch_wait_ms: Milliseconds = 200
    # RabbitMQ refuses messages over 128 MiB (max_message_size); a batch is two messages' worth.
    bridge_batch_max_bytes: int = Field(4 * MiB, ge=1024, le=64 * MiB)
    # Publish a batch as soon as Kafka has nothing more for it (lowest latency at low load); off:
    # every batch waits until full or BRIDGE_BATCH_WAIT_MS (fewer, larger tasks).
    bridge_flush_when_idle: bool = True
    # While records flow, Kafka holds each of the bridge's fetches up to this long (or until 1 MiB
    # arrived): a fetch brings what arrived meanwhile, so a batch leaves with company instead of
    # as a task per record or two; idle, fetches answer at the first record (bridge/fetch_wait.py).
    # 50 ms halved the pipeline's own CPU per record at 100-1,000 records/s for ~25 ms of median
    # latency (docs/performance.md); 0: Kafka always answers with the first record.
    bridge_batch_min_wait_ms: int = Field(50, ge=0, le=5_000)
    # Backpressure: a store's queue deeper than this pauses the partitions feeding it (0: off).
    bridge_max_queue_depth: int = Field(200, ge=0, le=1_000_000)
    # How long the group waits for a bridge that stopped answering before its partitions move on
    # (kafka-python's default, 45 s, is how long consumption stalled after a bridge was killed);
    # 6 s is the least a broker accepts by default (group.min.session.timeout.ms), 30 min the most.
    bridge_session_timeout_ms: int = Field(6_000, ge=1_000, le=1_800_000)
    # Prometheus metrics of the bridge (bridge/metrics.py); port 0 turns them off. In a
    # container, 0.0.0.0 lets Prometheus on the compose network scrape them (never published).
    bridge_metrics_addr: str = "127.0.0.1"
    bridge_metrics_port: int = Field(9108, ge=0, le=65_535)
    # Optional static group membership: a bridge restarted with the same id takes its partitions
    # back at once, without a rebalance. Must be unique per running bridge.
    bridge_instance_id: str = ""
    # What the topics keep (bookstore.kafka.topic_configs): -1 is forever. Off (the default),
    # every record of customers and books is kept forever and records without a key are
    # accepted, as the original system sends them. On, those topics are compacted: Kafka keeps
    # every record for TOPIC_COMPACTION_LAG_MS, then the latest per key, and **refuses every
    # record without a key**: only for deployments whose producers all key by id.
    topic_compaction: bool = False
    orders_retention_ms: Retention = -1
    dead_letters_retention_ms: Retention = -1
    topic_compaction_lag_ms: int = Field(7 * 24 * 3600 * 1000, ge=0)
    # Bad input (docs/contracts.md): a larger record value is a dead letter (stage validate).
    record_max_bytes: int = Field(MiB, ge=1, le=64 * MiB)
    # The one backoff for everything that waits for a server: tasks, the bridge, generation.
    # STORE_RETRY_MAX_SECONDS is its former name, still read.
    retry_max_seconds: float = Field(
        30.0,
        ge=0.1,
        le=3600,
        validation_alias=AliasChoices("retry_max_seconds", "store_retry_max_seconds"),
    )
    # A task failing for a reason that is about none of its records is parked after this many
    # retries (a RabbitMQ dead-letter queue; `python -m bookstore parked`).
    park_after_retries: int = Field(8, ge=0, le=1_000)
    # Generation (beat rates, Faker, Google Books client).
    generate_interval_seconds: Seconds = 5.0
    generate_customers_per_tick: PerTick = 3
    generate_books_per_tick: PerTick = 2
    generate_orders_per_tick: PerTick = 10
    faker_locale: str = "pt_BR"
    google_books_base_url: str = "https://www.googleapis.com/books/v1"
    google_books_timeout_seconds: float = Field(10.0, gt=0, le=300)
    google_books_max_attempts: int = Field(4, ge=1, le=100)
    google_books_backoff_seconds: float = Field(1.0, ge=0, le=3600)
    google_books_cooldown_seconds: float = Field(60.0, ge=0, le=24 * 3600)

    # Each store's own settings (its class's `settings_class`, read under its own prefix), by
    # store name (its entity's queue, or `audit`): read when first asked for (`store`), or all
    # at once by load_settings(stores=True); a namespace's replace the live ones (`with_store`).
    stores: dict[str, Any] = Field(default_factory=dict, repr=False)
    # The entities this process runs (load_settings: the built-in rows and installed ones).
    _entities: EntityTable = PrivateAttr(default_factory=EntityTable)

    @property
    def entities(self) -> EntityTable:
        return self._entities

    def running(self, table: EntityTable) -> Settings:
        """A copy running the entities of `table`."""
        copy = self.model_copy()
        copy._entities = table
        return copy

    @field_validator(
        "kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "celery_broker_cafile"
    )
    @classmethod
    def _a_readable_file(cls, path: str) -> str:
        if path and not os.access(path, os.R_OK):
            raise ValueError("no such file, or not readable by this process")
        return path

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_complete(cls, password: str, info: ValidationInfo) -> str:
        sasl = info.data.get("kafka_security_protocol") == "SASL_SSL"
        user = info.data.get("kafka_sasl_username")
        if sasl and not (user and password):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and this password"
                " (or KAFKA_SASL_PASSWORD_FILE)"
            )
        if not sasl and (user or password):
            raise ValueError(
                "a SASL user or password is set, but KAFKA_SECURITY_PROTOCOL is not SASL_SSL:"
                " it would not be used"
            )
        return password

    @field_validator("kafka_min_insync_replicas")
    @classmethod
    def _no_more_than_the_copies(cls, value: int, info: ValidationInfo) -> int:
        copies = info.data.get("kafka_replication_factor", 0)
        if value and copies and value > copies:
            raise ValueError(f"more than KAFKA_REPLICATION_FACTOR ({copies}): no write could pass")
        return value

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed, validated as the environment's values are."""
        fields = {**self.model_dump(exclude={"stores"}), "stores": self.stores, **changes}
        return Settings(**fields).running(self.entities)

    def store(self, name: str, model: type[BaseSettings] | None = None) -> Any:
        """The settings of the store `name` (its entity's queue): as loaded, or else read from
        the environment now with its class's `settings_class` (or `model`)."""
        own = self.stores.get(name)
        if own is None:
            own = read(model or self.entities.store(name).store_class().settings_class)
        return own

    def with_store(self, name: str, **changes: object) -> Settings:
        """A copy with some of the store `name`'s settings changed (e.g. into a namespace)."""
        return self.replace(stores={**self.stores, name: self.store(name).replace(**changes)})

    @field_validator("google_books_base_url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")


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


def load_settings(*, stores: bool = False) -> Settings:
    """Read the environment (and `.env`) now, with the entity table (`load_table`). `stores`:
    every store's settings too, now, each store's class checked against what its row declares
    (for the processes that open every store, the CLI's: a bad variable stops them at start; the
    others do not import the stores' drivers, and a worker reads its own stores' when it starts).
    Raises `ConfigError`, one line per bad variable, never pydantic's report."""
    read_env_file()
    table = load_table()
    problems: list[str] = []
    own = {}
    for spec in table.stores if stores else ():
        try:
            spec.check()
            own[spec.name] = read(spec.store_class().settings_class)
        except (ConfigError, TableError) as exc:
            problems.append(str(exc))
    try:
        settings = Settings(stores=own)
    except ValidationError as exc:
        problems.insert(0, _explain(exc, ""))
    except SettingFileError as exc:
        problems.insert(0, str(exc))
    if problems:
        # once each: REDIS_URL is both the generator's and the orders store's
        raise ConfigError("configuration error: " + "; ".join(dict.fromkeys(problems)))
    return settings.running(table)


def read(model: type[S]) -> S:
    """`model` read from the environment; ConfigError (without the prefix "configuration error")
    naming each bad variable."""
    try:
        return model()
    except ValidationError as exc:
        prefix = model.model_config.get("env_prefix") or ""
        raise ConfigError(_explain(exc, prefix.upper())) from None
    except SettingFileError as exc:
        raise ConfigError(str(exc)) from None


def _explain(exc: ValidationError, prefix: str) -> str:
    problems = []
    for error in exc.errors():
        name = prefix + str(error["loc"][0]).upper() if error["loc"] else "?"
        raw = os.environ.get(name, error.get("input"))
        shown = shown_value(name, raw)
        problems.append(f"{name}={shown!r}: {error['msg'].removeprefix('Value error, ').lower()}")
    return "; ".join(problems)


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|BASIC_AUTH|COOKIE", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^;,\s]*@", re.IGNORECASE)


def shown_value(name: str, raw: object) -> object:
    """`raw`, the value of variable `name`, as an error message may show it: a secret variable's
    value never, and a URL's user and password (everything before its host's `@`) masked."""
    if raw is None or raw == "":
        return raw
    if _SECRET_NAME.search(name):
        return "***"
    return _URL_CREDENTIALS.sub(lambda m: m["scheme"] + "***@", str(raw))
