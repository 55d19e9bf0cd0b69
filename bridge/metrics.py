"""The bridge's Prometheus metrics, served at http://BRIDGE_METRICS_ADDR:BRIDGE_METRICS_PORT/metrics.

What an operator needs to see the flow that Flower does not show: records in from Kafka and out to
RabbitMQ per topic, how large the tasks are, how long RabbitMQ takes to confirm them, how far
behind the consumer is, and the bridge's own troubles (paused partitions, rewinds, commits Kafka
refused). Workers' task metrics come from Flower's /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

CONSUMED = Counter(
    "bookstore_bridge_records_consumed", "Records the bridge took from Kafka.", ["topic"]
)
PUBLISHED = Counter(
    "bookstore_bridge_records_published",
    "Records whose persistence and audit tasks RabbitMQ confirmed.",
    ["topic"],
)
BATCH_RECORDS = Histogram(
    "bookstore_bridge_batch_records",
    "Records per task.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
BATCH_BYTES = Histogram(
    "bookstore_bridge_batch_bytes",
    "Bytes of the lines carried by one task.",
    buckets=(1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 4e6, 1.6e7),
)
PUBLISH_SECONDS = Histogram(
    "bookstore_bridge_publish_seconds",
    "From publishing a task to RabbitMQ's confirmation.",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
LAG = Gauge(
    "bookstore_bridge_consumer_lag",
    "Records of a partition beyond what RabbitMQ confirmed (the partition's end offset as last "
    "fetched, minus the bridge's confirmed offset).",
    ["topic", "partition"],
)
PAUSED = Gauge("bookstore_bridge_paused_partitions", "Partitions paused by backpressure.")
QUEUE_DEPTH = Gauge(
    "bookstore_queue_messages",
    "Tasks waiting in each Celery queue, as backpressure last read them from RabbitMQ.",
    ["queue"],
)
REWINDS = Counter(
    "bookstore_bridge_rewinds", "Failed publishes rewound to be read and published again."
)
COMMIT_FAILURES = Counter("bookstore_bridge_commit_failures", "Offset commits Kafka refused.")


class DeadLetterCount:
    """bookstore_dead_letters: the records the dead-letter topic holds, read from Kafka when
    Prometheus asks (at most every `every` seconds) in the scrape's own thread, so the bridge's
    loop never waits for it. Absent until Kafka first answered."""

    def __init__(self, count: Callable[[], int], every: float = 10.0):
        self.count = count
        self.every = every
        self.value: int | None = None
        self.read_at = float("-inf")
        self.lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.lock:
            if time.monotonic() - self.read_at >= self.every:
                self.read_at = time.monotonic()
                try:
                    self.value = self.count()
                except Exception as exc:  # Kafka away: the last figure stands
                    log.debug("dead-letter count failed: %s", exc)
            value = self.value
        if value is not None:
            yield GaugeMetricFamily(
                "bookstore_dead_letters",
                "Records held by the dead-letter topic (read at most every 10 s).",
                value=value,
            )


def serve(address: str, port: int, dead_letters: Callable[[], int]) -> None:
    """Serve /metrics in a background thread (port 0: not at all), `dead_letters()` counting
    the dead-letter topic. A port already taken is logged, not fatal: the bridge's work matters
    more than its metrics."""
    if not port:
        return
    REGISTRY.register(DeadLetterCount(dead_letters))
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        log.warning("metrics not served on %s:%d: %s", address, port, exc)
        return
    log.info("metrics on http://%s:%d/metrics", address, port)
