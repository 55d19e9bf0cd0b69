"""`python -m bridge`: run one bridge process (any number may run in one consumer group)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys

from kafka.errors import KafkaTimeoutError

from bookstore.broker import QueueMigrationNeeded, connect, declare, reach
from bookstore.config import ConfigError, load_settings
from bookstore.entities import topics
from bookstore.kafka import KafkaUnavailable, new_consumer, spanned
from bookstore.topic_config import ensure_topics
from bridge import metrics
from bridge.fanout import Bridge

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Consume customers/books/orders from Kafka and fan each record out as Celery "
        "tasks (its store's queue + the audit queue); offsets are committed only after RabbitMQ "
        "confirmed the publishes. Configured by the environment (see .env.example): "
        "KAFKA_BOOTSTRAP_SERVERS, CELERY_BROKER_URL, BRIDGE_GROUP_ID, BRIDGE_BATCH_SIZE, "
        "BRIDGE_BATCH_WAIT_MS, BRIDGE_BATCH_MAX_BYTES, BRIDGE_FLUSH_WHEN_IDLE, "
        "BRIDGE_BATCH_MIN_WAIT_MS, BRIDGE_MAX_QUEUE_DEPTH, BRIDGE_SESSION_TIMEOUT_MS, "
        "BRIDGE_INSTANCE_ID, "
        "BRIDGE_METRICS_ADDR, BRIDGE_METRICS_PORT.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)  # "task ran for 0.1s" noise
    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(str(exc))
    warn_if_slow_checksums()

    try:
        with connect(settings) as conn:
            declare(reach(conn), settings.entities)
    except QueueMigrationNeeded as exc:
        return fail(str(exc))
    except Exception as exc:
        broker = connect(settings).as_uri()  # password masked
        return fail(f"cannot reach RabbitMQ at {broker} (CELERY_BROKER_URL): {exc}")
    try:
        state = ensure_topics(settings)
        for topic in state.uncompacted:
            log.warning(
                "topic %s is not compacted although TOPIC_COMPACTION is on (python -m "
                "bookstore topics --apply)",
                topic,
            )
        for topic, (now, wanted) in state.under_replicated.items():
            log.warning(
                "topic %s has %d copies, not %d: losing a broker can lose its records (python "
                "-m bookstore topics --apply)",
                topic,
                now,
                wanted,
            )
        consumer = new_consumer(
            settings,
            group_id=settings.bridge_group_id,
            client_id="bookstore-bridge",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.bridge_batch_size,
            # A bridge that died frees its partitions after this long (kafka-python's 45 s
            # default is how long consumption stalled after a kill); heartbeats come from a
            # background thread, so a slow publish never looks like a dead bridge.
            session_timeout_ms=settings.bridge_session_timeout_ms,
            heartbeat_interval_ms=max(500, settings.bridge_session_timeout_ms // 4),
            group_instance_id=settings.bridge_instance_id or None,
        )
    except KafkaUnavailable as exc:  # unreachable, or the login refused: it says which
        return fail(str(exc))
    except KafkaTimeoutError:
        return fail(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)"
        )
    except ConfigError as exc:  # e.g. more copies wanted than the cluster has brokers
        return fail(str(exc))

    dead_letters = [topics(settings).dead_letters]
    metrics.serve(
        settings.bridge_metrics_addr,
        settings.bridge_metrics_port,
        lambda: sum(spanned(settings, dead_letters).values()),
    )
    bridge = Bridge(settings, consumer)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: bridge.stop())
    # `kill -USR1 <bridge>`: every thread's stack on stderr at once, then (from the main thread,
    # at its next step) where each partition stands: what a stalled bridge waits on
    signal.signal(signal.SIGUSR1, lambda *_: bridge.report_state())
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
    bridge.run()
    return 0


def warn_if_slow_checksums() -> None:
    """kafka-python verifies every record batch's CRC32C, in C when the `crc32c` package is
    importable and in pure Python otherwise, which costs the bridge about 40% of its time."""
    from kafka.record import util

    if util.crc32c_c is None:
        log.warning(
            "kafka-python checks record checksums in pure Python (the crc32c package is "
            "missing): the bridge runs far slower; install requirements.txt"
        )


def fail(message: str) -> int:
    print(f"bridge: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
