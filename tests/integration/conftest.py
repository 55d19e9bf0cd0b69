"""The integration tier: real servers (started by scripts/services), isolated test namespaces,
and real processes (workers, bridge) started and reaped by the tests. The tests' configuration
(their own topics, consumer group, vhost and stores: tests.support's `suite_environment`) is set
here, before anything reads it; the cluster tier takes it from here too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TEST_NAMESPACE, Processes, suite_environment

suite_environment()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.print_logs_if_failed(request)
    procs.stop_all()


@pytest.fixture(scope="session")
def settings():
    from bookstore.config import load_settings

    return load_settings()


@pytest.fixture(scope="session", autouse=True)
def _test_namespace() -> None:
    """The tests' own stores (their PostgreSQL database...), apart from a running stack's."""
    live, _ = suite_environment()
    TEST_NAMESPACE.create(live)
