"""The cluster tier: three Kafka nodes and three RabbitMQ nodes (`scripts/services up
--cluster`) in a network namespace of its own (`scripts/in-netns`), where nodes can be cut off
the network. `scripts/test` runs it after the other tiers; `scripts/test --cluster` alone."""

from __future__ import annotations

import pytest

from tests.cluster.nodes import KAFKA, STALLS, Cluster
from tests.integration.conftest import _test_namespace, processes, settings  # noqa: F401


@pytest.fixture(scope="session")
def cluster(settings) -> Cluster:  # noqa: F811
    nodes = settings.kafka_bootstrap_servers.split(",")
    if len(nodes) < len(KAFKA) or ";" not in settings.celery_broker_url:
        pytest.fail(
            "the cluster tier runs against `scripts/services up --cluster` inside "
            'scripts/in-netns, with `eval "$(scripts/services env)"`: run `scripts/test --cluster`'
        )
    return Cluster(settings)


def pytest_terminal_summary(terminalreporter) -> None:
    if STALLS:
        terminalreporter.section("cluster faults: records flowing end to end again after")
        for fault, seconds in STALLS.items():
            terminalreporter.write_line(f"{seconds:6.1f} s  {fault}")
