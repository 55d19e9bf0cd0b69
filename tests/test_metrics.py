"""The bridge's Prometheus endpoint against a running bridge: the figures move as records flow."""

from __future__ import annotations

import json
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from bookstore.topics import CUSTOMERS
from tests.conftest import wait_until
from tests.pipeline import Pipeline, produce_each
from tests.test_flower import free_port


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_the_metrics_follow_the_records_through_the_bridge(processes, settings, tmp_path):
    port = free_port()
    pipeline = Pipeline(processes, settings, tmp_path, BRIDGE_METRICS_PORT=str(port))
    pipeline.start_workers()
    bridge = pipeline.start_bridge()
    wait_until(lambda: b"assigned" in bridge.log_path.read_bytes(), 60, "partition assignment")
    before = wait_until(lambda: _try_scrape(port), 30, "the metrics endpoint")
    assert total(before, "bookstore_bridge_records_consumed_total", topic=CUSTOMERS) == 0

    customers = [
        {"id": str(uuid.uuid4()), "name": "m", "email": f"{uuid.uuid4().hex}@example.com"}
        for _ in range(120)
    ]
    produce_each(settings, [(CUSTOMERS, None, json.dumps(c).encode()) for c in customers])

    def flowed() -> dict | None:
        after = scrape(port)
        published = total(after, "bookstore_bridge_records_published_total", topic=CUSTOMERS)
        return after if published >= len(customers) else None

    after = wait_until(flowed, 60, "the records in the bridge's metrics")
    assert total(after, "bookstore_bridge_records_consumed_total", topic=CUSTOMERS) >= 120
    assert total(after, "bookstore_bridge_publish_seconds_count", queue="postgres") >= 1
    assert total(after, "bookstore_bridge_publish_seconds_count", queue="audit") >= 1
    assert total(after, "bookstore_bridge_batch_records_sum") >= 120
    assert total(after, "bookstore_bridge_batch_bytes_sum") > 120 * 100
    lags = {ls: v for (n, ls), v in after.items() if n == "bookstore_bridge_consumer_lag"}
    assert len(lags) == 3 * settings.kafka_partitions  # every partition the bridge holds
    wait_until(
        lambda: total(scrape(port), "bookstore_bridge_consumer_lag", topic=CUSTOMERS) == 0,
        30,
        "the customers' lag to come back to 0",
    )
    assert ("bookstore_queue_messages", (("queue", "postgres"),)) in after


def _try_scrape(port: int) -> dict | None:
    try:
        return scrape(port)
    except OSError:
        return None
