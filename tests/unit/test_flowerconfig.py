"""flowerconfig.py as Flower reads it (tornado executes the file and takes its globals as options):
Flower's task history is bounded unless the operator says otherwise."""

from __future__ import annotations

import runpy

import pytest

from tests.support import REPO


@pytest.fixture
def flower_options():
    from flower.options import options  # defines Flower's options, as `celery flower` does

    before = options.basic_auth
    options.basic_auth = ["ops:secret"]
    yield options
    options.basic_auth = before


def read_config() -> dict:
    return runpy.run_path(str(REPO / "flowerconfig.py"))


def test_flower_keeps_ten_thousand_tasks_by_default(flower_options, monkeypatch):
    monkeypatch.delenv("FLOWER_MAX_TASKS", raising=False)
    config = read_config()
    assert config["max_tasks"] == 10_000
    assert flower_options.max_tasks == 100_000  # Flower's own default, which this replaces


def test_flower_max_tasks_from_the_environment_wins(flower_options, monkeypatch):
    monkeypatch.setenv("FLOWER_MAX_TASKS", "500")
    assert "max_tasks" not in read_config()  # Flower takes FLOWER_MAX_TASKS itself
