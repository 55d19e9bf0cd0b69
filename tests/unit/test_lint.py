"""Lint, as part of the test suite (so CI runs it): ruff for the Python code, shellcheck for every
shell script, hadolint for the Dockerfile. The binaries come from PyPI (requirements-dev.txt)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

BIN = Path(sys.executable).parent


def shell_scripts() -> list[Path]:
    """Every script run by bash: a bash shebang, or a module sourced by scripts/services."""
    found = []
    for path in sorted([*REPO.glob("scripts/**/*"), *REPO.glob(".ci/*")]):
        if path.is_file() and (
            path.suffix == ".sh" or path.read_bytes()[:64].startswith(b"#!/usr/bin/env bash")
        ):
            found.append(path)
    return found


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=str)
def test_ruff(args):
    result = run(BIN / "ruff", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_at_warning_level():
    scripts = shell_scripts()
    assert REPO / "scripts/services.d/common.sh" in scripts and REPO / ".ci/run" in scripts
    result = run(BIN / "shellcheck", "--severity=warning", "--external-sources", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = run(BIN / "hadolint", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
