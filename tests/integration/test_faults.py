"""The fault suite on the single stack: servers and processes fail mid-stream, nothing is lost,
nothing is doubled (the stream and the end state: tests/integration/faults.py).

After a Kafka restart and after a bridge is replaced, records must flow again within RESUME_BOUND
seconds (measured: a record sent to every partition once the fault is over, until audited).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import redis

from bookstore.namespace import Namespace
from bookstore.stores.redis_orders import ALL_ORDERS
from tests.integration.faults import Run, mixed_run
from tests.support import Processes, services, wait_until

NS = Namespace("bookstore_faults", {"redis_db": 2})
RESUME_BOUND = 10.0  # seconds (issue: "consumption resumes within 10 s")


@pytest.fixture
def run(request, settings, tmp_path) -> Iterator[Run]:
    """A pipeline on the suite's own stores, and a mixed stream ready to start."""
    processes = Processes(tmp_path)
    try:
        yield mixed_run(
            processes,
            settings,
            tmp_path,
            NS,
            (600, 300, 1500),
            # 40 s of stream: a Kafka stop and start alone can take 20 s, and the stream must
            # still be flowing after it (at 100/s, 24 s, it sometimes was not)
            per_second=60,
            RECORD_MAX_BYTES="200000",
            BRIDGE_BATCH_SIZE="100",
            RETRY_MAX_SECONDS="2",
        )
    finally:
        processes.print_logs_if_failed(request)
        processes.stop_all()


def test_kafka_broker_stopped_and_killed_mid_stream(run):
    run.stream.start()
    run.progressed(0.15)
    services("down", "kafka")
    time.sleep(3)
    services("up", "kafka")
    assert run.resumed_within(time.monotonic(), "Kafka stopped") < RESUME_BOUND

    run.progressed(0.4)
    services("kill", "kafka")  # as a crash: no clean shutdown, `up` must cope
    time.sleep(1)
    services("up", "kafka")
    assert run.resumed_within(time.monotonic(), "Kafka killed") < RESUME_BOUND
    run.assert_nothing_lost()


def test_stores_killed_or_stopped_mid_stream(run):
    run.stream.start()
    run.progressed(0.1)
    services("kill", "mongo")
    time.sleep(3)
    services("up", "mongo")
    run.progressed(0.25)
    services("kill", "redis")
    time.sleep(3)
    services("up", "redis")
    run.progressed(0.4)
    services("down", "postgres")
    stopped = time.monotonic()
    orders = redis.Redis.from_url(run.settings.store("redis").url)
    try:  # the other stores keep flowing meanwhile
        seen = orders.scard(ALL_ORDERS)
        wait_until(
            lambda: orders.scard(ALL_ORDERS) > seen,
            20,
            "orders to keep flowing while PostgreSQL is down",
        )
    finally:
        orders.close()
    time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))
    services("up", "postgres")
    run.assert_nothing_lost()


def test_rabbitmq_stopped_mid_stream(run):
    run.stream.start()
    run.progressed(0.2)
    services("down", "rabbitmq")
    time.sleep(2)  # tasks the workers already held finish
    audited = len(run.pipeline.audit_coords())
    time.sleep(4)  # records wait in Kafka, uncommitted: nothing new reaches the workers
    assert len(run.pipeline.audit_coords()) == audited
    services("up", "rabbitmq")
    run.pipeline.assert_working()  # every worker back, consuming, answering remote control
    run.assert_nothing_lost()


def test_workers_and_the_bridge_killed_mid_stream(run):
    pipeline = run.pipeline
    run.stream.start()
    run.progressed(0.15)
    for queue in ("postgres", "audit"):  # the parent and its pool children, mid-task
        Processes.stop(pipeline.workers[queue], signal.SIGKILL)
        pipeline.workers[queue] = pipeline.processes.worker(queue, env=pipeline.env)
    run.progressed(0.4)
    Processes.stop(pipeline.bridge, signal.SIGKILL)
    pipeline.start_bridge()
    assert run.resumed_within(time.monotonic(), "bridge replaced") < RESUME_BOUND
    run.assert_nothing_lost()
