"""The monitoring profile's files, without a server: the scrape jobs reach what compose runs, and
every dashboard query names a metric that really exists. (Prometheus's own `promtool` checks the
configuration in tests/integration/test_metrics.py, where Debian's Prometheus is installed.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import flower.events
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bridge import metrics
from tests.support import REPO

MONITORING = REPO / "monitoring"
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
FLOWER_EVENTS = Path(flower.events.__file__).read_text()  # where Flower defines its metrics


def bridge_samples() -> set[str]:
    """The sample names the bridge exposes (counters get _total, histograms _bucket/_sum/_count)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    wrapped = {
        m._name + suffix
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
        for suffix in suffixes[m._type]
    }
    collected = {family.name for family in metrics.DeadLetterCount(lambda: 0).collect()}
    return wrapped | collected


def test_prometheus_scrapes_every_bridge_and_flower_where_compose_runs_them():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [dns] = jobs["bridge"]["dns_sd_configs"]
    assert dns["names"] == ["bridge"]  # every replica of `--scale bridge=N`
    assert str(dns["port"]) == str(COMPOSE["bridge"]["environment"]["BRIDGE_METRICS_PORT"])
    assert COMPOSE["bridge"]["environment"]["BRIDGE_METRICS_ADDR"] == "0.0.0.0"
    assert jobs["flower"]["static_configs"][0]["targets"] == ["flower:5555"]
    assert "--port=5555" in COMPOSE["flower"]["command"]
    mounts = COMPOSE["prometheus"]["volumes"]
    assert "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_is_provisioned_with_the_prometheus_datasource_and_the_dashboard():
    provisioning = MONITORING / "grafana/provisioning"
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090" and source["uid"] == "prometheus"
    [provider] = yaml.safe_load((provisioning / "dashboards/bookstore.yml").read_text())[
        "providers"
    ]
    mounts = COMPOSE["grafana"]["volumes"]
    assert f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_every_dashboard_query_names_a_metric_that_exists():
    dashboard = json.loads((MONITORING / "grafana/dashboards/bookstore.json").read_text())
    known = bridge_samples()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 8 and all(p["title"] for p in dashboard["panels"])
    for expr in exprs:
        for name in set(re.findall(r"\b(bookstore_\w+|flower_\w+)", expr)):
            if name.startswith("flower_"):
                assert f"'{name}'" in FLOWER_EVENTS, f"Flower exposes no {name}"
            else:
                assert name in known, f"the bridge exposes no {name} ({expr})"
    panels = " ".join(p["title"].lower() for p in dashboard["panels"])
    for what in ("records in", "stored", "lag", "waiting per queue", "dead letters", "p99"):
        assert what in panels, what
