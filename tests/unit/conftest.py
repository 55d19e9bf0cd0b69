"""The unit tier: no server, seconds in all (`scripts/test -m unit`). Every test under this
directory is marked `unit`. The tests' configuration is set before anything reads it (as for the
integration tier: tests.support's `suite_environment`)."""

import pytest

from tests.support import suite_environment

suite_environment()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/unit/" in item.nodeid:
            item.add_marker(pytest.mark.unit)
