"""Lose a node, lose nothing: the pipeline on three Kafka and three RabbitMQ nodes while nodes
are killed, paused, cut off the network and restarted under load.

One mixed stream per fault family (tests/integration/faults.py), ending exactly: every record
Kafka acknowledged stored as the log says (`verify` exit 0), nothing doubled, every record
audited, the bad ones dead-lettered once, lag 0, nothing parked, `check` clean. After each fault
records must flow end to end again (a record sent to every partition, produced, consumed and
stored) within STALL_BOUND seconds; the measured times are printed at the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from kafka.errors import KafkaError

from bookstore.generator import CUSTOMER_IDS
from bookstore.kafka import send_confirmed
from tests.cluster.nodes import KAFKA, RABBITMQ, STALLS, Cluster
from tests.integration.faults import Run, mixed_run
from tests.integration.pipeline import Namespace
from tests.support import TOPICS, Processes, wait_until

NS = Namespace("bookstore_cluster", redis_db=2)
STALL_BOUND = 60.0  # seconds, for every fault below (measured: README, "Scaling out")
HELD = 30.0  # seconds a node stays paused or cut off


def whole(cluster: Cluster) -> None:
    wait_until(
        lambda: cluster.kafka_whole(TOPICS.all) and cluster.rabbitmq_whole(),
        240,
        "all six nodes up, every partition and quorum queue whole again",
        every=2,
    )


@pytest.fixture
def run(settings, tmp_path, cluster) -> Iterator[Run]:
    whole(cluster)
    processes = Processes(tmp_path)
    try:
        faults = mixed_run(
            processes,
            settings,
            tmp_path,
            NS,
            (600, 300, 1500),
            per_second=15,
            RECORD_MAX_BYTES="200000",
            BRIDGE_BATCH_SIZE="100",
            RETRY_MAX_SECONDS="5",
        )
        yield faults
        STALLS.update(faults.stalls)
    finally:
        processes.stop_all()


def measured(run: Run, fault: str, since: float) -> None:
    assert run.resumed_within(since, fault) < STALL_BOUND


Act = Callable[[str], None]


def survived(
    run: Run, cluster: Cluster, what: str, node: str, fault: Act, undo: Act, held: float = 0.0
) -> None:
    """Apply `fault` to `node`, measure how long until records flow again (bounded), keep it
    `held` seconds in all, undo it, and wait until every node and replica is whole again."""
    since = time.monotonic()
    fault(node)
    try:
        measured(run, what, since)
        time.sleep(max(0.0, held - (time.monotonic() - since)))
    finally:
        undo(node)
    whole(cluster)


def test_kafka_nodes_killed_and_paused(run, cluster):
    run.stream.start()
    run.progressed(0.03)
    picks = (
        (lambda: cluster.kafka_leading_most(TOPICS.all), "leading the most partitions"),
        (cluster.controller, "the active controller"),
    )
    for pick, why in picks:
        node = pick()
        survived(run, cluster, f"kill -9 of {node}, {why}", node, cluster.kill, cluster.start)
    node = cluster.kafka_leading_most(TOPICS.all)
    survived(
        run,
        cluster,
        f"SIGSTOP of {node} for {HELD:.0f}s",
        node,
        cluster.pause,
        cluster.resume,
        HELD,
    )
    run.assert_nothing_lost()


def test_rabbitmq_nodes_killed(run, cluster):
    run.stream.start()
    run.progressed(0.03)
    picks = (
        (cluster.rabbitmq_leading_most, "holding the queue leaders"),
        (cluster.rabbitmq_serving_most, "the one the workers and the bridge use"),
    )
    for pick, why in picks:
        node = pick()
        survived(run, cluster, f"kill -9 of {node}, {why}", node, cluster.kill, cluster.start)
    run.assert_nothing_lost()


def test_a_node_cut_off_from_the_other_two(run, cluster):
    run.stream.start()
    run.progressed(0.03)
    for node in (cluster.kafka_leading_most(TOPICS.all), cluster.rabbitmq_serving_most()):
        survived(
            run, cluster, f"{node} cut off for {HELD:.0f}s", node, cluster.cut, cluster.heal, HELD
        )
    run.assert_nothing_lost()


def test_a_rolling_restart_of_all_six_nodes(run, cluster):
    run.stream.start()
    run.progressed(0.03)
    for node in (*KAFKA, *RABBITMQ):
        survived(
            run, cluster, f"rolling restart: {node} stopped", node, cluster.stop, cluster.start
        )
    run.assert_nothing_lost()


def test_two_of_three_kafka_nodes_down_refuse_writes_then_everything_flows(run, cluster, settings):
    """Without two in-sync copies Kafka acknowledges nothing: producers get errors (the
    product's generation too, which then registers no id), nothing is reported sent that was not
    written, and everything flows again once the nodes are back."""
    run.stream.start()
    run.progressed(0.03)
    registry = redis.Redis.from_url(run.settings.redis_url)
    registered = registry.smembers(CUSTOMER_IDS)
    probe = [(None, b"a probe of this process's producer", [])]  # nothing reads it as a letter
    send_confirmed(settings, TOPICS.dead_letters, probe)  # the product's producer, as it runs
    down = KAFKA[1:]
    for node in down:
        cluster.kill(node)
    try:
        with pytest.raises(KafkaError):  # not acknowledged: an error, never reported as sent
            send_confirmed(settings, TOPICS.dead_letters, probe, timeout=10)
        refused = run.pipeline.cli("generate", "--customers", "5", "--books", "0", "--orders", "0")
        assert refused.returncode == 4 and "Kafka" in refused.stderr, refused.stderr
        assert registry.smembers(CUSTOMER_IDS) == registered
    finally:
        for node in down:
            cluster.start(node)
    measured(run, "two of three Kafka nodes down, then back", time.monotonic())
    whole(cluster)
    send_confirmed(settings, TOPICS.dead_letters, probe)  # the same producer works again
    generated = run.pipeline.cli("generate", "--customers", "5", "--books", "0", "--orders", "0")
    assert generated.returncode == 0, generated.stderr
    assert len(registry.smembers(CUSTOMER_IDS)) == len(registered) + 5
    registry.close()
    run.assert_nothing_lost()
