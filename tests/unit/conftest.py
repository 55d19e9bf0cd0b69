"""The unit tier: no server, seconds in all (`scripts/test -m unit`). Every test under this
directory is marked `unit`."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/unit/" in item.nodeid:
            item.add_marker(pytest.mark.unit)
