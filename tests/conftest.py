"""What every tier shares: a failed test's fixtures can tell that it failed (`CALL_FAILED`), so
that they leave what the pipeline's processes logged in its report."""

from __future__ import annotations

import pytest

from tests.support import CALL_FAILED


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED] = True
    return report
