"""The bridge as a process: start-up errors, graceful stop, batching and backpressure."""

from __future__ import annotations

import signal
import subprocess

from tests.integration.pipeline import Pipeline, Stores, Stream, build_dataset, produce
from tests.support import ORDERS, Processes, run, wait_until


def run_bridge(**env: str) -> subprocess.CompletedProcess:
    return run("-m", "bridge", env=env, timeout=60)


def holding_pipeline(processes, settings, tmp_path) -> Pipeline:
    """A pipeline whose bridge holds what it consumed: batches that only a full minute or a stop
    can release."""
    return Pipeline(
        processes,
        settings,
        tmp_path,
        BRIDGE_BATCH_WAIT_MS="60000",
        BRIDGE_BATCH_SIZE="10000",
        BRIDGE_FLUSH_WHEN_IDLE="false",
    )


def test_unreachable_kafka_is_named_without_a_traceback():
    result = run_bridge(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert result.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_rabbitmq_is_named_without_its_password():
    result = run_bridge(CELERY_BROKER_URL="amqp://guest:s3cret@127.0.0.1:1//")
    assert result.returncode == 1
    assert "cannot reach RabbitMQ at amqp://guest:**@127.0.0.1:1//" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def test_sigterm_finishes_in_flight_commits_and_exits_0(processes, settings, tmp_path):
    ds = build_dataset(30, 30, 30)
    pipeline = holding_pipeline(processes, settings, tmp_path)
    pipeline.start_workers("audit")
    bridge = pipeline.start_bridge()
    pipeline.wait_assigned()
    coords = produce(settings, ds.messages)
    wait_until(
        lambda: (pipeline.metric("bookstore_bridge_records_consumed_total") or 0) >= len(coords),
        60,
        "the bridge to buffer every record",
    )
    assert not pipeline.audit_coords()
    # SIGTERM must flush the buffered records, then commit them, not drop them
    assert Processes.stop(bridge, signal.SIGTERM) == 0
    pipeline.wait_audited(coords, timeout=60)
    committed = pipeline.committed()
    for topic, partition, offset in coords:
        assert committed[(topic, partition)] > offset


def test_a_minimum_wait_gathers_a_steady_trickle_into_fewer_tasks(processes, settings, tmp_path):
    """BRIDGE_BATCH_MIN_WAIT_MS: at 20 records/s, in two-record bursts, Kafka holds the bridge's
    fetch 300 ms for company instead of answering with each burst; every record still arrives."""
    orders = [m for m in build_dataset(2, 2, 60).messages if m[0] == ORDERS]
    pipeline = Pipeline(processes, settings, tmp_path, BRIDGE_BATCH_MIN_WAIT_MS="300")
    pipeline.start_workers("redis", "audit")
    pipeline.start_bridge()
    pipeline.wait_assigned()
    stream = Stream(settings, orders, per_second=20).start()
    wait_until(lambda: stream.done, 30, "the trickle to be sent")
    coords = stream.finish(timeout=60)
    pipeline.wait_audited(set(coords), timeout=60)
    batches = pipeline.metric("bookstore_bridge_batch_records_count")
    assert batches is not None and batches <= 15, f"{batches} batches for 60 records in 3 s"


PAUSED = "bookstore_bridge_paused_partitions"


def test_backpressure_pauses_only_the_store_whose_queue_is_deep(processes, settings, tmp_path):
    ds = build_dataset(20, 600, 300)
    pipeline = Pipeline(
        processes,
        settings,
        tmp_path,
        BRIDGE_BATCH_SIZE="10",
        BRIDGE_BATCH_WAIT_MS="50",
        BRIDGE_MAX_QUEUE_DEPTH="20",
    )
    pipeline.start_workers("postgres", "redis", "audit")  # no mongo worker: its queue backs up
    before = _queue_depth("mongo")  # tasks left by an earlier, interrupted run
    pipeline.start_bridge()
    produce(settings, ds.messages)
    stores = Stores(settings)
    try:
        wait_until(
            lambda: len(stores.orders(list(ds.orders))) == len(ds.orders),
            120,
            "orders to keep flowing while the books queue is deep",
        )
        wait_until(lambda: (pipeline.metric(PAUSED) or 0) > 0, 30, "the books partitions paused")
        added = _queue_depth("mongo") - before
        assert added <= 30, f"{added} of 60 book tasks queued: the bridge did not hold back"
        assert len(stores.books(ds.books)) == 0

        pipeline.start_workers("mongo")
        wait_until(
            lambda: len(stores.books(ds.books)) == len(ds.books),
            180,
            "every book once the queue drained",
        )
        wait_until(lambda: pipeline.metric(PAUSED) == 0, 30, "the books partitions resumed")
    finally:
        stores.close()


def _queue_depth(queue: str) -> int:
    from tasks import app

    with app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def test_sigusr1_logs_every_threads_stack_and_each_partitions_state(processes, settings, tmp_path):
    """An operator asking a stalled bridge what it waits on (`kill -USR1`) gets its threads'
    stacks and, per partition, the offset it fetches next, what RabbitMQ confirmed and whether
    it may fetch; the bridge goes on."""
    pipeline = holding_pipeline(processes, settings, tmp_path)
    bridge = pipeline.start_bridge()
    pipeline.wait_assigned()
    coords = produce(settings, build_dataset(3, 3, 3).messages)
    wait_until(
        lambda: (pipeline.metric("bookstore_bridge_records_consumed_total") or 0) >= len(coords),
        60,
        "the bridge to buffer the records",
    )
    bridge.send_signal(signal.SIGUSR1)
    log = lambda: processes.log("bridge")  # noqa: E731
    wait_until(lambda: "records buffered for" in log(), 30, "the bridge's state in its log")
    assert "Current thread 0x" in log() and "in run" in log()  # the main loop's stack
    states = [line for line in log().splitlines() if "bridge.fanout: state " in line]
    partitions = {f"{topic}[{partition}]" for topic, partition, _ in coords}
    assert partitions <= {line.split("state ")[1].split(":")[0] for line in states}
    assert "records buffered for ['" in log()  # held back by the minute-long batch wait
    assert all("fetchable True" in line for line in states)
    assert bridge.poll() is None
    assert Processes.stop(bridge, signal.SIGTERM) == 0
