"""The bridge's Prometheus endpoint against a running bridge: the figures move as records flow."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid

from bookstore.kafka import spanned
from tests.integration.pipeline import Pipeline, dead_letters_of, produce_each
from tests.support import (
    CUSTOMERS,
    DEAD_LETTERS,
    REPO,
    free_port,
    scrape,
    total,
    try_scrape,
    wait_until,
)


def test_the_metrics_follow_the_records_through_the_bridge(processes, settings, tmp_path):
    port = free_port()
    pipeline = Pipeline(processes, settings, tmp_path, BRIDGE_METRICS_PORT=str(port))
    pipeline.start_workers()
    pipeline.start_bridge()
    pipeline.wait_assigned()
    before = wait_until(lambda: try_scrape(port), 30, "the metrics endpoint")
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

    def lags() -> dict | None:  # a gauge per partition held, once Kafka answered a fetch for it
        found = {
            ls: v for (n, ls), v in scrape(port).items() if n == "bookstore_bridge_consumer_lag"
        }
        return found if len(found) == 3 * settings.kafka_partitions else None

    wait_until(lags, 30, "a lag gauge for every partition the bridge holds")
    wait_until(
        lambda: total(scrape(port), "bookstore_bridge_consumer_lag", topic=CUSTOMERS) == 0,
        30,
        "the customers' lag to come back to 0",
    )
    assert ("bookstore_queue_messages", (("queue", "postgres"),)) in after

    # the dead letters, as the topic holds them (counted when scraped, at most every 10 s)
    [junk] = produce_each(settings, [(CUSTOMERS, None, b"{not json")])
    dead_letters_of(settings, [junk])  # waits until the worker dead-lettered it
    held = sum(spanned(settings, [DEAD_LETTERS]).values())
    wait_until(
        lambda: total(scrape(port), "bookstore_dead_letters") == held,
        30,
        f"bookstore_dead_letters to read {held}",
    )


def test_a_real_prometheus_scrapes_the_bridge(processes, settings, tmp_path):
    """Debian's Prometheus, scraping a running bridge every second, sees records flow."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: scripts/services up prometheus installs it"
    port, prometheus_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: bridge, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}\n"
    )
    pipeline = Pipeline(processes, settings, tmp_path, BRIDGE_METRICS_PORT=str(port))
    pipeline.start_workers("postgres", "audit")
    pipeline.start_bridge()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        query = f'sum(bookstore_bridge_records_published_total{{topic="{CUSTOMERS}"}})'
        wait_until(
            lambda: _query(prometheus_port, "up") == 1, 60, "Prometheus to scrape the bridge"
        )
        customers = [
            {"id": str(uuid.uuid4()), "name": "p", "email": f"{uuid.uuid4().hex}@example.com"}
            for _ in range(40)
        ]
        produce_each(settings, [(CUSTOMERS, None, json.dumps(c).encode()) for c in customers])
        wait_until(
            lambda: (_query(prometheus_port, query) or 0) >= len(customers),
            60,
            "Prometheus to see the records published",
        )
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _query(port: int, promql: str) -> float | None:
    """The single value of an instant query, or None while there is none."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.loads(response.read())["data"]["result"]
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None


def test_promtool_accepts_the_prometheus_configuration():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/services up prometheus installs it"
    check = subprocess.run(
        [promtool, "check", "config", str(REPO / "monitoring" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
