"""The bridge as a process: start-up errors, graceful stop, batching and backpressure."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from kafka import KafkaAdminClient

from tests.conftest import REPO, Processes, wait_until
from tests.pipeline import Pipeline, Stores, build_dataset, produce


def run_bridge(**env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "bridge"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
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
    # batches that only a full minute or a stop can release
    pipeline = Pipeline(
        processes,
        settings,
        tmp_path,
        BRIDGE_BATCH_WAIT_MS="60000",
        BRIDGE_BATCH_SIZE="10000",
        BRIDGE_FLUSH_WHEN_IDLE="false",
    )
    pipeline.start_workers("audit")
    bridge = processes.start("bridge", "-m", "bridge", "--log-level=DEBUG", env=pipeline.env)
    wait_until(lambda: b"assigned" in bridge.log_path.read_bytes(), 60, "partition assignment")
    coords = produce(settings, ds.messages)
    wait_until(lambda: _buffered(bridge) >= len(coords), 60, "the bridge to buffer every record")
    assert not pipeline.audit_coords()
    # SIGTERM must flush the buffered records, then commit them, not drop them
    assert Processes.stop(bridge, signal.SIGTERM) == 0
    pipeline.wait_audited(coords, timeout=60)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    committed = admin.list_group_offsets(pipeline.group)[pipeline.group]
    admin.close()
    for topic, partition, offset in coords:
        assert committed[_tp(topic, partition)].offset > offset


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
    bridge = pipeline.start_bridge()
    produce(settings, ds.messages)
    stores = Stores(settings)
    try:
        wait_until(
            lambda: len(stores.orders(list(ds.orders))) == len(ds.orders),
            120,
            "orders to keep flowing while the books queue is deep",
        )
        wait_until(
            lambda: b"queue mongo is deep" in bridge.log_path.read_bytes(),
            30,
            "the bridge to pause the books partitions",
        )
        added = _queue_depth("mongo") - before
        assert added <= 30, f"{added} of 60 book tasks queued: the bridge did not hold back"
        assert len(stores.books(ds.books)) == 0

        pipeline.start_workers("mongo")
        wait_until(
            lambda: len(stores.books(ds.books)) == len(ds.books),
            180,
            "every book once the queue drained",
        )
        assert b"queue mongo drained; resuming" in bridge.log_path.read_bytes()
    finally:
        stores.close()


def _buffered(bridge) -> int:
    """Records the bridge has taken from Kafka, from its debug log."""
    log = bridge.log_path.read_text(errors="replace")
    return sum(int(n) for n in re.findall(r"buffered (\d+) records of", log))


def _queue_depth(queue: str) -> int:
    from tasks import app

    with app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def _tp(topic: str, partition: int):
    from kafka import TopicPartition

    return TopicPartition(topic, partition)
