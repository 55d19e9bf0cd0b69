"""`.env` applies to every process: what the environment does not set comes from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def topics(cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m bookstore topics` from `cwd`: it first reaches Kafka, and names the address."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BOOKSTORE_ENV_FILE", "KAFKA_BOOTSTRAP_SERVERS")
    }
    return subprocess.run(
        [sys.executable, "-m", "bookstore", "topics"],
        cwd=cwd,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_env_file_fills_what_the_environment_does_not_set(tmp_path):
    (tmp_path / ".env").write_text('# a comment\nexport KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9"\n')
    result = topics(tmp_path)
    assert result.returncode == 4 and "127.0.0.1:9" in result.stderr, result.stderr


def test_the_environment_wins_over_the_env_file(tmp_path):
    (tmp_path / ".env").write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9\n")
    result = topics(tmp_path, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:8")
    assert result.returncode == 4 and "127.0.0.1:8" in result.stderr, result.stderr


def test_bookstore_env_file_names_another_file_or_none(tmp_path):
    (tmp_path / "other.env").write_text("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:7\n")
    (tmp_path / ".env").write_text("KAFKA_PARTITIONS=not-a-number\n")  # an error if read
    named = topics(tmp_path, BOOKSTORE_ENV_FILE=str(tmp_path / "other.env"))
    assert named.returncode == 4 and "127.0.0.1:7" in named.stderr, named.stderr
    none = topics(tmp_path, BOOKSTORE_ENV_FILE="", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:6")
    assert none.returncode == 4 and "127.0.0.1:6" in none.stderr, none.stderr
    read = topics(tmp_path, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:6")
    assert read.returncode != 0 and "KAFKA_PARTITIONS" in read.stderr, read.stderr
