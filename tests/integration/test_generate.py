"""Generation end to end: real Kafka, a real `generate` worker, the burst CLI (no Google network;
a local fake serves the API). Topics are shared with other tests, so every check reads from the
offsets present before the test and keeps only the entities this test's generator registered."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from bookstore import entities
from bookstore.generator import BOOK_IDS, CUSTOMER_IDS
from bookstore.kafka import offsets
from bookstore.sources.fake import EMAIL_DOMAINS, isbn13_check_digit
from bookstore.topic_config import ensure_topics
from tests.integration.google_books_fake import Reply, google  # noqa: F401 (fixture)
from tests.support import TABLE, TOPICS, run, wait_until

# The generator's id registry lives in its own Redis db here, so the sets hold exactly what
# this test produced (db 1, the tests' usual one, is shared with the bridge tests).
REGISTRY_URL = "redis://localhost:6379/13"


@pytest.fixture
def registry(settings) -> redis.Redis:
    ensure_topics(settings)
    client = redis.Redis.from_url(REGISTRY_URL)
    client.delete(CUSTOMER_IDS, BOOK_IDS)
    yield client
    client.close()


@pytest.fixture
def gen_env(google) -> dict[str, str]:  # noqa: F811
    return {
        "REDIS_URL": REGISTRY_URL,
        "GOOGLE_BOOKS_BASE_URL": google.base_url,
        "GOOGLE_BOOKS_BACKOFF_SECONDS": "0.01",
        "GOOGLE_BOOKS_TIMEOUT_SECONDS": "5",
    }


def _consumer(settings) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None)


def snapshot(settings) -> dict[str, dict[TopicPartition, int]]:
    """Each entity topic's end offsets (waiting for a topic just created to have partitions)."""
    return {
        t: wait_until(lambda t=t: offsets(settings, [TOPICS.of(t)])[1], 60, f"{t} metadata")
        for t in TABLE.names
    }


def read_since(settings, start: dict[TopicPartition, int]) -> list:
    """Every record from `start` up to the end offsets as of now."""
    consumer = _consumer(settings)
    try:
        parts = list(start)
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, start[tp])
        end = consumer.end_offsets(parts)
        records: list = []

        def drained() -> bool:
            for batch in consumer.poll(500).values():
                records.extend(batch)
            return all(consumer.position(tp) >= end[tp] for tp in parts)

        wait_until(drained, 120, "reading back the topic")
        return records
    finally:
        consumer.close()


def _headers(record) -> dict[str, bytes]:
    return dict(record.headers)


def check_common(record, source: set[bytes]) -> dict:
    value = json.loads(record.value)
    # exactly the messages' JSON (docs/contracts.md), compact, UTF-8; key = id; metadata in headers
    assert record.value == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert record.key == value["id"].encode()
    headers = _headers(record)
    assert headers["source"] in source
    assert headers["schema-version"] == b"1"
    produced = datetime.fromisoformat(headers["produced-at"].decode().replace("Z", "+00:00"))
    assert produced.utcoffset().total_seconds() == 0
    return value


def check_customer(record) -> dict:
    c = check_common(record, {b"faker"})
    assert set(c) == {"id", "name", "email"}
    assert str(uuid.UUID(c["id"])) == c["id"]
    assert isinstance(c["name"], str) and c["name"]
    local, _, domain = c["email"].partition("@")
    assert domain in EMAIL_DOMAINS
    assert re.fullmatch(r"[a-z0-9]+\.[a-z0-9]+\.[0-9a-f]{12}", local)
    return c


def check_book(record) -> dict:
    b = check_common(record, {b"google", b"faker"})
    assert set(b) == {"id", "isbn", "title", "authors", "publishedDate"}
    assert isinstance(b["id"], str) and b["id"]
    assert isinstance(b["title"], str) and b["title"]
    assert isinstance(b["authors"], list) and all(isinstance(a, str) for a in b["authors"])
    assert b["isbn"] is None or isinstance(b["isbn"], str)
    assert b["publishedDate"] is None or isinstance(b["publishedDate"], str)
    if _headers(record)["source"] == b"faker":
        assert b["id"].startswith("faker-") and len(b["id"]) > 12  # never a Google volume id
        assert re.fullmatch(r"978\d{10}", b["isbn"])
        assert b["isbn"][-1] == isbn13_check_digit(b["isbn"][:12])
        assert b["authors"]
    return b


def check_order(record) -> dict:
    o = check_common(record, {b"faker"})
    assert set(o) == {"id", "customer_id", "book_id", "quantity", "timestamp"}
    assert str(uuid.UUID(o["id"])) == o["id"]
    assert str(uuid.UUID(o["customer_id"])) == o["customer_id"]
    assert isinstance(o["book_id"], str) and o["book_id"]
    assert isinstance(o["quantity"], int) and 1 <= o["quantity"] <= 5
    assert isinstance(o["timestamp"], int | float) and o["timestamp"] > 1.7e9
    return o


def _key(record) -> str | None:
    return record.key.decode(errors="replace") if record.key is not None else None


def _json(value: bytes | None) -> dict:
    """Other tests put malformed records on the shared topics: those are simply not ours."""
    try:
        parsed = json.loads(value or b"")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def published(settings, start, registry: redis.Redis) -> tuple[dict, dict, list]:
    """This test's customers and books (by id, as published) and its orders."""
    mine_c = {m.decode() for m in registry.smembers(CUSTOMER_IDS)}
    mine_b = {m.decode() for m in registry.smembers(BOOK_IDS)}
    customers = [r for r in read_since(settings, start[entities.CUSTOMERS]) if _key(r) in mine_c]
    books = [r for r in read_since(settings, start[entities.BOOKS]) if _key(r) in mine_b]
    orders = [
        r
        for r in read_since(settings, start[entities.ORDERS])
        if _json(r.value).get("customer_id") in mine_c
    ]
    by_id_c = {check_customer(r)["id"]: r for r in customers}
    by_id_b = {check_book(r)["id"]: r for r in books}
    # registered ids are exactly the published ones, each published once
    assert set(by_id_c) == mine_c and len(customers) == len(mine_c)
    assert set(by_id_b) == mine_b and len(books) == len(mine_b)
    for o in map(check_order, orders):
        assert o["customer_id"] in by_id_c and o["book_id"] in by_id_b
    return by_id_c, by_id_b, orders


def burst(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run("-m", "bookstore", "generate", *args, env=env)


def test_burst_publishes_exactly_the_requested_counts(settings, registry, gen_env):
    start = snapshot(settings)
    run = burst(gen_env, "--customers", "7", "--books", "5", "--orders", "9")
    assert run.returncode == 0, run.stderr
    customers, books, orders = published(settings, start, registry)
    assert (len(customers), len(books), len(orders)) == (7, 5, 9)
    assert {_headers(r)["source"] for r in books.values()} == {b"google"}
    assert "5 from Google, 0 fallback" in run.stdout


def test_burst_falls_back_to_faker_when_google_keeps_failing(settings, registry, gen_env, google):  # noqa: F811
    google.reply(Reply(500, {"error": {"code": 500}}))
    start = snapshot(settings)
    run = burst(gen_env, "--customers", "0", "--books", "4", "--orders", "0")
    assert run.returncode == 0, run.stderr
    _, books, orders = published(settings, start, registry)
    assert len(books) == 4 and not orders
    assert {_headers(r)["source"] for r in books.values()} == {b"faker"}
    assert "0 from Google, 4 fallback" in run.stdout


def test_burst_orders_wait_for_customers_and_books(settings, registry, gen_env):
    run = burst(gen_env, "--customers", "0", "--books", "0", "--orders", "3")
    assert run.returncode == 0, run.stderr
    assert "no published customers or books yet" in run.stdout


def test_burst_reports_in_json(settings, registry, gen_env):
    run = burst(gen_env, "--customers", "2", "--books", "1", "--orders", "1", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "customers": 2,
        "books": {"google": 1, "faker": 0},
        "orders": 1,
        "orders_not_published": 0,
    }


@pytest.mark.parametrize(
    "env",
    [{"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}, {"REDIS_URL": "redis://127.0.0.1:9/0"}],
    ids=["kafka", "redis"],
)
def test_burst_unreachable_server_is_one_clear_line(env, gen_env):
    run = burst({**gen_env, **env}, "--customers", "1", "--books", "0", "--orders", "0")
    assert run.returncode == 4  # the CLI's exit code for a server that cannot be reached
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    assert "127.0.0.1:9" in lines[0]


def _succeeded(worker, task_id: str) -> str | None:
    log = worker.log_path.read_text(errors="replace")
    match = re.search(rf"\[{task_id}\] succeeded in [0-9.]+s: (.*)", log)
    return match.group(1) if match else None


def test_generation_tasks_route_to_the_generate_queue():
    from tasks import app

    for name in ("generate_customers", "generate_books", "generate_orders"):
        route = app.amqp.router.route({}, f"tasks.generate.{name}")
        assert route["queue"].name == entities.GENERATE_QUEUE


@pytest.fixture
def private_queue() -> str:
    """A queue of this test's own: a developer's stack (worker or beat on `generate`) on the
    same RabbitMQ can neither take this test's tasks nor feed its worker."""
    from tasks import app

    name = f"{entities.GENERATE_QUEUE}-test-{uuid.uuid4().hex[:8]}"
    yield name
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(name)


def test_worker_orders_reference_only_published_ids_across_restart(
    settings, registry, gen_env, processes, private_queue
):
    from tasks.generate import generate_books, generate_customers, generate_orders

    start = snapshot(settings)
    worker = processes.worker(private_queue, env=gen_env)

    def run(task, n: int) -> str:
        task_id = task.apply_async((n,), queue=private_queue).id
        return wait_until(lambda: _succeeded(worker, task_id), 180, f"{task.name}({n})")

    assert run(generate_orders, 5) == "0"  # nothing published yet: no orders, no failure
    assert run(generate_customers, 4) == "4"
    assert run(generate_books, 3) == "{'google': 3, 'faker': 0}"
    assert run(generate_orders, 6) == "6"

    processes.stop(worker)
    worker = processes.worker(private_queue, env=gen_env)
    # a fresh process still finds the published ids (Redis), so orders flow at once
    assert run(generate_orders, 6) == "6"

    customers, books, orders = published(settings, start, registry)
    assert (len(customers), len(books), len(orders)) == (4, 3, 12)


def test_beat_schedule_expires_missed_ticks(settings):
    from beat_schedule import schedule
    from tasks import app

    beat_schedule = schedule(settings)
    assert {e["task"] for e in beat_schedule.values()} == {
        "tasks.generate.generate_customers",
        "tasks.generate.generate_books",
        "tasks.generate.generate_orders",
    }
    assert app.conf.beat_schedule == beat_schedule
    assert {e["task"] for e in beat_schedule.values()} <= set(app.tasks)
    for entry in beat_schedule.values():
        assert 0 < entry["options"]["expires"] <= entry["schedule"]
        assert entry["args"][0] >= 0


def test_task_retries_with_backoff_when_kafka_is_down(processes, private_queue, gen_env):
    from tasks.generate import generate_customers

    env = {**gen_env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    worker = processes.worker(private_queue, env=env)
    task_id = generate_customers.apply_async((1,), queue=private_queue).id
    wait_until(
        lambda: re.search(rf"\[{task_id}\] retry: Retry in \d+", worker.log_path.read_text()),
        180,
        "the task to be retried",
    )


def test_a_tick_that_waited_past_its_expiry_is_dropped(
    processes, private_queue, gen_env, registry, settings
):
    """What beat's `expires` buys: ticks queued while no worker ran do not burst out later."""
    from beat_schedule import schedule
    from tasks.generate import generate_books, generate_customers

    options = schedule(settings)["generate-customers"]["options"]
    stale = generate_customers.apply_async((3,), queue=private_queue, **{**options, "expires": 1})
    time.sleep(2)  # the tick expires while no worker is running
    worker = processes.worker(private_queue, env=gen_env)
    fresh = generate_books.apply_async((1,), queue=private_queue).id  # queued behind the stale
    wait_until(lambda: _succeeded(worker, fresh), 180, "a later task to run")
    assert _succeeded(worker, stale.id) is None
    assert registry.scard(CUSTOMER_IDS) == 0
