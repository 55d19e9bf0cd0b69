"""Settings: typed and range-checked, one line naming a bad variable, from every entry point."""

from __future__ import annotations

import pytest

from bookstore.config import ConfigError, Settings, load_settings, shown_value
from tests.support import REPO, TABLE, run, suite_environment


@pytest.fixture
def env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for entity in TABLE.rows:  # and every store's own variables
        model = entity.store_class().settings_class
        for name in model.model_fields:
            monkeypatch.delenv(model.model_config["env_prefix"] + name.upper(), raising=False)
    monkeypatch.delenv("STORE_RETRY_MAX_SECONDS", raising=False)
    return monkeypatch


def test_defaults_point_at_the_local_stack(env):
    s = load_settings()
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert (s.bridge_batch_size, s.bridge_flush_when_idle, s.retry_max_seconds) == (500, True, 30)
    assert s.store("postgres").dsn == "postgresql://bookstore:bookstore@localhost:5432/bookstore"
    assert (s.store("mongo").uri, s.store("mongo").db) == ("mongodb://localhost:27017", "bookstore")
    assert s.store("redis").url == s.redis_url == "redis://localhost:6379/0"


def test_values_are_parsed_and_an_empty_one_means_the_default(env):
    env.setenv("BRIDGE_BATCH_SIZE", "750")
    env.setenv("BRIDGE_FLUSH_WHEN_IDLE", "off")
    env.setenv("KAFKA_PARTITIONS", "")
    env.setenv("GOOGLE_BOOKS_BASE_URL", "http://127.0.0.1:9/books/v1/")
    s = load_settings()
    assert (s.bridge_batch_size, s.bridge_flush_when_idle, s.kafka_partitions) == (750, False, 3)
    assert s.google_books_base_url == "http://127.0.0.1:9/books/v1"


def test_the_former_name_of_the_retry_limit_is_still_read(env):
    env.setenv("STORE_RETRY_MAX_SECONDS", "5")
    assert load_settings().retry_max_seconds == 5
    env.setenv("RETRY_MAX_SECONDS", "7")
    assert load_settings().retry_max_seconds == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRIDGE_BATCH_SIZE", "0"),
        ("BRIDGE_BATCH_MAX_BYTES", str(65 * 1024 * 1024)),
        ("BRIDGE_METRICS_PORT", "70000"),
        ("BRIDGE_SESSION_TIMEOUT_MS", "999"),
        ("ORDERS_RETENTION_MS", "-2"),
        ("RETRY_MAX_SECONDS", "0"),
        ("GENERATE_INTERVAL_SECONDS", "0"),
        ("GENERATE_ORDERS_PER_TICK", "-1"),
        ("GOOGLE_BOOKS_MAX_ATTEMPTS", "0"),
        ("KAFKA_PARTITIONS", "three"),
        ("BRIDGE_FLUSH_WHEN_IDLE", "maybe"),
        ("MONGO_DB", "books/2026"),  # a store's own settings (bookstore.stores.mongo)
    ],
)
def test_a_value_out_of_range_names_the_variable_and_the_value(env, name, value):
    env.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(stores=True)  # the settings of the processes that open stores
    message = str(raised.value)
    assert message.startswith(f"configuration error: {name}={value!r}: "), message
    assert "\n" not in message


def test_every_bad_variable_is_named_the_cores_and_the_stores_alike(env):
    env.setenv("KAFKA_PARTITIONS", "0")
    env.setenv("MONGO_DB", "a.b")
    with pytest.raises(
        ConfigError, match=r"^configuration error: KAFKA_PARTITIONS='0': .*; MONGO_DB='a.b': "
    ):
        load_settings(stores=True)


def test_a_store_read_when_first_asked_for_names_its_bad_variable_too(env):
    env.setenv("MONGO_DB", "a.b")
    settings = load_settings()  # a process that opens no store is not stopped by it
    with pytest.raises(ConfigError, match=r"^MONGO_DB='a.b': "):
        settings.store("mongo")


def test_each_store_reads_its_own_settings_under_its_own_prefix(env):
    env.setenv("POSTGRES_DSN", "postgresql://u@127.0.0.1:5433/shop")
    env.setenv("MONGO_DB", "shop")
    settings = load_settings()
    assert settings.store("postgres").dsn == "postgresql://u@127.0.0.1:5433/shop"
    assert (settings.store("mongo").db, settings.store("mongo").uri) == (
        "shop",
        "mongodb://localhost:27017",
    )
    moved = settings.with_store("mongo", db="elsewhere")
    assert (moved.store("mongo").db, settings.store("mongo").db) == ("elsewhere", "shop")
    assert moved.replace(bridge_batch_size=7).store("mongo").db == "elsewhere"


def test_every_numeric_setting_has_a_range():
    for name, field in Settings.model_fields.items():
        if field.annotation in (int, float):
            bounds = [m for m in field.metadata if hasattr(m, "ge") or hasattr(m, "gt")]
            assert bounds, f"{name} has no lower bound"


def test_a_copy_with_changes_is_validated_too():
    s = load_settings()
    assert s.replace(bridge_batch_size=9).bridge_batch_size == 9
    with pytest.raises(ValueError):
        s.replace(bridge_batch_size=0)


ENTRY_POINTS = {
    "the CLI": (["-m", "bookstore", "stats"], 2, "error: configuration error: "),
    "the bridge": (["-m", "bridge"], 1, "bridge: configuration error: "),
    "a worker": (["-m", "celery", "-A", "tasks", "worker", "-Q", "audit"], 1, "configuration "),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_process_stops_at_start_with_one_line(tmp_path, entry):
    args, code, prefix = ENTRY_POINTS[entry]
    result = run(*args, env={"PYTHONPATH": str(REPO), "BRIDGE_BATCH_SIZE": "0"}, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "BRIDGE_BATCH_SIZE='0'" in lines[0]


def test_the_test_suite_moves_every_place_the_product_keeps_data():
    """Topics, every store of the table, consumer group and vhost of the tests are not the
    product's: `scripts/run` after `scripts/test` starts on the product's own data
    (tests/integration/conftest.py)."""
    _, test_env = suite_environment()

    for place in ("KAFKA_TOPIC_PREFIX", "CELERY_BROKER_URL", "BRIDGE_GROUP_ID"):
        assert test_env[place] != Settings.model_fields[place.lower()].default, place
    for spec in TABLE.stores:
        model = spec.store_class().settings_class
        prefix = (model.model_config.get("env_prefix") or "").upper()
        moved = {
            name
            for name, field in model.model_fields.items()
            if test_env.get(f"{prefix}{name}".upper()) not in (None, str(field.default))
        }
        assert moved, f"the tests' {spec.name} store is the product's"


def test_more_insync_replicas_than_copies_is_refused_naming_the_variable(env):
    env.setenv("KAFKA_REPLICATION_FACTOR", "2")
    env.setenv("KAFKA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(
        ConfigError, match="(?i)KAFKA_MIN_INSYNC_REPLICAS='3': more than KAFKA_REPLICATION_FACTOR"
    ):
        load_settings()
    env.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    assert load_settings().kafka_min_insync_replicas == 2


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("POSTGRES_DSN", "postgresql://shop:s3cr3t-pw@127.0.0.1:5432", "s3cr3t-pw"),
        ("POSTGRES_DSN", "postgresql://shop:p@ss@127.0.0.1:5432", "p@ss"),
        ("MONGO_DB", "a.b", None),
    ],
)
def test_a_bad_value_is_named_without_its_password(env, name, value, secret):
    """A URL's credentials never reach an error message (nor a log line that prints one)."""
    env.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(stores=True)
    message = str(raised.value)
    assert name in message
    if secret:
        assert secret not in message and "***@127.0.0.1" in message, message
    else:
        assert repr(value) in message


def test_secret_variables_and_url_credentials_are_masked():
    assert shown_value("REDIS_PASSWORD", "hunter2") == "***"
    assert shown_value("GOOGLE_BOOKS_API_KEY", "AIza-key") == "***"
    broker = "amqp://u:pw1@10.0.0.1:5672//;amqp://u:pw2@10.0.0.2:5672//"
    assert (
        shown_value("CELERY_BROKER_URL", broker)
        == "amqp://***@10.0.0.1:5672//;amqp://***@10.0.0.2:5672//"
    )
    assert shown_value("REDIS_URL", "redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_a_setting_may_come_from_a_file(env, tmp_path):
    """NAME_FILE=path (Docker's and Kubernetes' secrets): the file's content, one trailing
    newline dropped, for the core settings and each store's alike; never shown in a repr."""
    dsn, broker = tmp_path / "dsn", tmp_path / "broker"
    dsn.write_text("postgresql://shop:s3cr3t@db.internal:5432/shop\n")
    broker.write_text("amqp://bridge:s3cr3t@mq.internal:5671//")
    env.setenv("POSTGRES_DSN_FILE", str(dsn))
    env.setenv("CELERY_BROKER_URL_FILE", str(broker))
    settings = load_settings(stores=True)
    assert settings.stores["postgres"].dsn == "postgresql://shop:s3cr3t@db.internal:5432/shop"
    assert settings.celery_broker_url == "amqp://bridge:s3cr3t@mq.internal:5671//"
    assert "s3cr3t" not in repr(settings) + repr(settings.stores)


@pytest.mark.parametrize(
    ("both", "expected"),
    [
        (True, r"^configuration error: REDIS_URL and REDIS_URL_FILE are both set: keep one$"),
        (False, r"^configuration error: REDIS_URL_FILE='.*/missing': no such file or directory$"),
    ],
)
def test_a_setting_file_that_cannot_count_is_named(env, tmp_path, both, expected):
    env.setenv("REDIS_URL_FILE", str(tmp_path / "missing"))
    if both:
        env.setenv("REDIS_URL", "redis://localhost:6379/3")
    with pytest.raises(ConfigError, match=f"(?i){expected}"):
        load_settings(stores=True)
