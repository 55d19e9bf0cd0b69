"""The docs cannot drift from the code: every link and anchor resolves, every CLI command and flag
named exists, the configuration table and `.env.example` name exactly the variables the code
reads, every `scripts/services` verb named is one it has. Each check is also shown failing on a
copy of the docs with one name changed (a check that cannot fail proves nothing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import typer

from bookstore.cli import app
from bookstore.config import Settings
from tests.support import REPO, TABLE

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)
CLI = re.compile(r"python -m bookstore((?: +[a-z][a-z-]*)+)([^`\n|]*)")
SERVICES = re.compile(r"scripts/services +([a-z][a-z-]*)")
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*[A-Z0-9])`")


def prose(text: str) -> str:
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(pages: Iterable[Path]) -> list[str]:
    problems = []
    for page in pages:
        for target in LINK.findall(prose(page.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check offline
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            if not where.exists():
                problems.append(f"{page.name}: {target}: no such file")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                problems.append(f"{page.name}: {target}: no such heading in {where.name}")
    return problems


def _cli() -> Any:
    return typer.main.get_command(app)  # Typer's own click: a group has `commands`


def _command(words: list[str]) -> tuple[Any, list[str]]:
    """The deepest command `words` name, and the words left over."""
    command = _cli()
    while words and words[0] in getattr(command, "commands", {}):
        command = command.commands[words.pop(0)]
    return command, words


def unknown_commands(pages: Iterable[Path]) -> list[str]:
    problems = []
    for page in pages:
        for names, rest in CLI.findall(page.read_text()):
            command, left = _command(names.split())
            if hasattr(command, "commands") and left:
                problems.append(f"{page.name}: python -m bookstore{names}: no command {left[0]!r}")
                continue
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                if flag not in options | {"--help"}:
                    problems.append(f"{page.name}: python -m bookstore{names}: no flag {flag}")
    return problems


def readme_cli_table(readme: Path) -> list[str]:
    """The commands named in the README's CLI table, and every command the CLI has, both ways."""
    section = readme.read_text().split("## The operator CLI", 1)[1].split("\n## ", 1)[0]
    named = set()
    problems = []
    for cell in re.findall(r"^\| (.+?) \|", section, re.M):
        for code in re.findall(r"`([^`]+)`", cell):
            words = [w for w in code.split() if re.fullmatch(r"[a-z][a-z-]*", w)]
            _, left = _command(list(words))
            if left or not words or words[0] not in _cli().commands:
                problems.append(f"README: CLI table: `{code}` is not a command")
            named.add(words[0])
    problems += [f"README: CLI table lacks `{c}`" for c in sorted(set(_cli().commands) - named)]
    return problems


def model_variables() -> set[str]:
    names = {f.upper() for f in Settings.model_fields if f != "stores"}  # each store's: below
    for spec in TABLE.stores:
        model = spec.store_class().settings_class
        prefix = (model.model_config.get("env_prefix") or "").upper()
        names |= {prefix + f.upper() for f in model.model_fields}
    return names


def _read_elsewhere() -> str:
    """Everything that may read a variable besides the settings models: compose files, scripts,
    the Celery and Flower edges, the Procfile, the Dockerfile."""
    files = [
        *REPO.glob("docker-compose*.yml"),
        *REPO.glob("scripts/**/*"),
        REPO / "Procfile",
        REPO / "Dockerfile",
        REPO / "flowerconfig.py",
        REPO / "celeryconfig.py",
        *REPO.glob("bookstore/**/*.py"),
        *REPO.glob("docker/**/*"),
        *REPO.glob("monitoring/**/*.yml"),
    ]
    return "\n".join(f.read_text(errors="replace") for f in files if f.is_file())


def configuration_table(page: Path) -> list[str]:
    """Every variable the settings models read has a row; every row names a variable that the
    models, compose or a script read."""
    rows = re.findall(r"^\| (`.+?) \|", page.read_text(), re.M)
    documented = {v for row in rows for v in VARIABLE.findall(row)}
    elsewhere = _read_elsewhere()
    problems = [f"{page.name}: no row for {v}" for v in sorted(model_variables() - documented)]
    problems += [
        f"{page.name}: {v} is read by nothing"
        for v in sorted(documented - model_variables())
        if not re.search(rf"\b{v}\b", elsewhere)
    ]
    return problems


def env_example(path: Path) -> list[str]:
    elsewhere = _read_elsewhere()
    return [
        f"{path.name}: {v} is read by nothing"
        for v in re.findall(r"^([A-Z][A-Z0-9_]*)=", path.read_text(), re.M)
        if v not in model_variables() and not re.search(rf"\b{v}\b", elsewhere)
    ]


def _services_verbs() -> set[str]:
    usage = subprocess.run(
        [str(REPO / "scripts/services"), "help"], capture_output=True, text=True, timeout=30
    ).stdout
    return set(re.findall(r"scripts/services (?:[a-z]+\|)*([a-z][a-z-]*)", usage)) | {
        v for group in re.findall(r"scripts/services ([a-z|]+)", usage) for v in group.split("|")
    }


def unknown_services_verbs(pages: Iterable[Path]) -> list[str]:
    verbs = _services_verbs()
    return [
        f"{page.name}: scripts/services {verb}: no such verb"
        for page in pages
        for verb in SERVICES.findall(page.read_text())
        if verb not in verbs
    ]


def test_every_link_and_anchor_resolves():
    assert broken_links(PAGES) == []


def test_every_cli_command_and_flag_named_exists():
    assert unknown_commands(PAGES) == []
    assert readme_cli_table(REPO / "README.md") == []


def test_the_configuration_table_and_the_models_name_the_same_variables():
    assert configuration_table(REPO / "docs/configuration.md") == []


def test_every_variable_of_env_example_is_read():
    assert env_example(REPO / ".env.example") == []


def test_every_services_verb_named_exists():
    assert unknown_services_verbs(PAGES) == []


def test_the_readme_is_read_in_five_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


@pytest.fixture
def copy(tmp_path) -> Path:
    """README.md and docs/ copied, to change one name in."""
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "README.md", tmp_path)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name} any more: pick another example"
    path.write_text(text.replace(old, new, 1))


def test_each_check_fails_when_one_name_changes(copy):
    pages = [copy / "README.md", *sorted((copy / "docs").glob("*.md"))]
    _edit(copy / "README.md", "(docs/cluster.md)", "(docs/clusters.md)")
    _edit(
        copy / "docs/operating.md", "#whatever-the-input-one-outcome", "#whatever-input-one-outcome"
    )
    assert len(broken_links(pages)) == 2
    _edit(copy / "docs/operating.md", "python -m bookstore check", "python -m bookstore chek")
    _edit(
        copy / "docs/source-of-truth.md", "python -m bookstore verify", "python -m bookstore vrfy"
    )
    assert len(unknown_commands(pages)) == 2
    _edit(copy / "README.md", "| `stats` |", "| `statistics` |")
    assert len(readme_cli_table(copy / "README.md")) == 2  # not a command; `stats` missing
    _edit(copy / "docs/configuration.md", "`BRIDGE_MAX_QUEUE_DEPTH`", "`BRIDGE_MAX_DEPTH`")
    assert len(configuration_table(copy / "docs/configuration.md")) == 2
    _edit(copy / "docs/development.md", "scripts/services up", "scripts/services upp")
    assert unknown_services_verbs(pages) == ["development.md: scripts/services upp: no such verb"]
    env = copy / ".env.example"
    env.write_text((REPO / ".env.example").read_text() + "BRIDGE_NO_SUCH_SETTING=1\n")
    assert env_example(env) == [".env.example: BRIDGE_NO_SUCH_SETTING is read by nothing"]
