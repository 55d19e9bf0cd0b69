"""The Celery queues are RabbitMQ quorum queues (bookstore/broker.py), on one node as on a cluster:
a retried task waits in RabbitMQ, never in a worker; a task that kills its worker process ends in
`parked` after the delivery limit, but a generation tick that expired is dropped; queues of an
earlier release are migrated without losing a task. Test tasks: tests/integration/queue_tasks.py,
on the product's app and policy."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Exchange, Queue

from bookstore.broker import DELIVERY_LIMIT, QUORUM, declare, queues_of
from bookstore.entities import PARKED_QUEUE
from tasks import app
from tests.integration.queue_tasks import QUEUE
from tests.support import TABLE, Processes, purge_task_queues, run, services, wait_until


@pytest.fixture
def events(settings) -> Iterator[tuple[str, redis.Redis, dict[str, str]]]:
    """A run id, the Redis list its tasks report to, and the environment of their worker."""
    url = settings.redis_url.rsplit("/", 1)[0] + "/15"
    client = redis.Redis.from_url(url)
    run_id = f"queues-{uuid.uuid4().hex[:8]}"
    purge_task_queues(settings)
    yield run_id, client, {"TEST_EVENTS_URL": url, "RETRY_MAX_SECONDS": "8"}
    client.delete(run_id)
    client.close()
    purge_task_queues(settings)


def start_worker(processes: Processes, env: dict[str, str]):
    worker = processes.worker(QUEUE, "--include", "tests.integration.queue_tasks", env=env)
    wait_until(lambda: app.control.inspect(timeout=1).ping(), 60, "the worker to answer")
    return worker


def send(name: str, *args: object) -> None:
    app.send_task(name, args=list(args), queue=QUEUE, routing_key=QUEUE)


def reported(client: redis.Redis, run_id: str) -> list[str]:
    return [e.decode() for e in client.lrange(run_id, 0, -1)]


def test_a_retry_waits_in_rabbitmq_while_its_worker_runs_other_tasks_and_survives_it(
    processes, events
):
    """With quorum queues a worker holding a countdown task would take nothing else until it
    is due (no global QoS): the countdown waits in RabbitMQ's delay queues instead."""
    run_id, client, env = events
    worker = start_worker(processes, env)
    send("tests.flaky", run_id, 4)  # retried after ~1, ~1-2, ~2-4 and ~4-8 s
    wait_until(lambda: reported(client, run_id).count("flaky-run") == 3, 60, "a third run")
    for n in range(10):
        send("tests.quick", run_id, n)
    wait_until(lambda: len(reported(client, run_id)) == 13, 30, "the quick tasks")
    assert reported(client, run_id).count("flaky-run") == 3, "they waited for the retry"

    processes.stop(worker, signal.SIGKILL)  # while the retry waits: RabbitMQ holds it
    start_worker(processes, env)
    wait_until(lambda: "flaky-done" in reported(client, run_id), 60, "the retried task done")
    assert reported(client, run_id).count("flaky-run") == 5


def test_a_task_that_kills_its_worker_process_is_parked_after_the_delivery_limit(
    processes, events, settings
):
    """Each crash returns the task to its queue (acks late, reject on worker lost); past the
    delivery limit RabbitMQ dead-letters it into `parked` instead of redelivering it forever."""
    run_id, client, env = events
    start_worker(processes, env)
    send("tests.crash", run_id)

    def parked() -> list[dict]:
        result = run("-m", "bookstore", "parked", "list", "--json")
        assert result.returncode == 0, result.stderr
        return [p for p in json.loads(result.stdout) if p["task"] == "tests.crash"]

    [task] = wait_until(parked, 300, "the crashing task in parked", every=2)
    assert (task["queue"], task["why"]) == (QUEUE, "delivery_limit")
    assert reported(client, run_id).count("crash-run") == DELIVERY_LIMIT + 1


def previous_release(name: str, tasks: int) -> None:
    """`name` as the release before declared it (a classic queue, a direct exchange), holding
    `tasks` task messages."""
    with app.connection_for_write() as conn:
        channel = conn.channel()
        channel.queue_delete(name)
        channel.exchange_delete(name)
        old = Queue(
            name,
            Exchange(name, type="direct"),
            routing_key=name,
            durable=True,
            queue_arguments={"x-dead-letter-exchange": PARKED_QUEUE},
        )
        old(channel).declare()
        producer = conn.Producer(channel)
        for n in range(tasks):
            producer.publish(
                json.dumps([[f"old-{n}"], {}, {}]),
                exchange=name,
                routing_key=name,
                headers={"task": "tasks.audit.record_messages", "id": f"old-{n}"},
                content_type="application/json",
                content_encoding="utf-8",
            )


def is_quorum(name: str) -> bool:
    """Declared as this release declares it (RabbitMQ refuses a declaration that differs)."""
    from amqp.exceptions import PreconditionFailed

    queue = next(q for q in queues_of(TABLE) if q.name == name)
    with app.connection_for_write() as conn:
        try:
            queue(conn.channel()).declare()
            return queue.queue_arguments["x-queue-type"] == QUORUM["x-queue-type"]
        except PreconditionFailed:
            return False


def test_an_earlier_release_queue_holding_tasks_is_migrated_losing_none(processes, tmp_path):
    previous_release("audit", 5)
    bridge = run("-m", "bridge", env={"BRIDGE_METRICS_PORT": "0"}, timeout=60)
    assert bridge.returncode == 1 and "queues migrate" in bridge.stderr, bridge.stderr
    assert "Traceback" not in bridge.stderr

    result = run("-m", "bookstore", "queues", "migrate", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["queues"]["audit"] == 5
    assert is_quorum("audit")
    again = run("-m", "bookstore", "queues", "migrate", "--json")  # nothing left to do
    assert again.returncode == 0 and json.loads(again.stdout)["queues"]["audit"] == 5
    with app.connection_for_write() as conn:
        channel = conn.channel()
        moved = [channel.basic_get("audit", no_ack=True) for _ in range(5)]
    assert [m.headers["id"] for m in moved] == [f"old-{n}" for n in range(5)]  # in order
    assert json.loads(moved[0].body) == [["old-0"], {}, {}]


def test_an_empty_queue_of_an_earlier_release_is_replaced_at_start_up():
    previous_release("mongo", 0)
    assert not is_quorum("mongo")
    with app.connection_for_write() as conn:
        declare(conn, TABLE)
    assert is_quorum("mongo")


def test_generation_ticks_that_expire_are_dropped_not_parked(processes, tmp_path, events):
    """Beat gives each tick one interval (the AMQP expiration of its message): with no generate
    worker consuming, the ticks expire in RabbitMQ and are gone; `parked` keeps meaning "a task
    that needs a person"."""
    beat = processes.beat(tmp_path / "beat-schedule", 1)
    log = beat.log_path  # type: ignore[attr-defined]
    wait_until(lambda: log.read_text().count("Sending due task") >= 9, 60, "three ticks")
    processes.stop(beat)

    def waiting() -> int:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_declare("generate", passive=True).message_count

    wait_until(lambda: waiting() == 0, 30, "the expired ticks gone from generate")
    result = run("-m", "bookstore", "parked", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_generate_queue_of_an_earlier_release_is_replaced_at_start_up():
    """The release before dead-lettered `generate` into `parked` (a quorum queue, other
    arguments): empty, it is replaced by one that does not."""
    with app.connection_for_write() as conn:
        channel = conn.channel()
        channel.queue_delete("generate")
        earlier = Queue(
            "generate",
            Exchange("generate", type="topic", durable=True),
            routing_key="generate",
            durable=True,
            queue_arguments={**QUORUM, "x-dead-letter-exchange": PARKED_QUEUE},
        )
        earlier(channel).declare()
    assert not is_quorum("generate")
    with app.connection_for_write() as conn:
        declare(conn, TABLE)
    assert is_quorum("generate")


def test_the_quorum_queues_memory_is_bounded_on_the_running_node():
    """RabbitMQ holds its quorum queues' write-ahead log in memory until the log rolls over: the
    node runs with the smaller log and the memory watermark scripts/services gives it."""
    wal = services("ctl", "rabbitmq", "eval", "application:get_env(ra, wal_max_size_bytes).")
    assert wal.strip() == "{ok,67108864}"
    limit = services("ctl", "rabbitmq", "eval", "vm_memory_monitor:get_memory_limit().")
    assert int(limit.strip()) == 1_000_000_000
