"""`python -m bookstore dead-letters list | replay`: inspect and re-publish records that failed."""

from __future__ import annotations

import enum
from collections import defaultdict
from typing import Annotated, Any

import typer

from bookstore import dead_letter_topic, entities
from bookstore.cli.app import app
from bookstore.cli.common import (
    EXIT_NOT_FOUND,
    CliError,
    JsonOption,
    build_table,
    console,
    print_json,
    reporting_errors,
)
from bookstore.config import Settings, load_settings
from bookstore.dead_letter_topic import ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, Letter
from bookstore.entities import BUILT_IN
from bookstore.kafka import Window, send_confirmed
from bookstore.records import put_text


def _as_json(dl: Letter) -> dict[str, Any]:
    data: dict[str, Any] = {
        "partition": dl.partition,
        "offset": dl.offset,
        "timestamp": dl.timestamp,
        "key": _text(dl.key),
        "headers": dl.headers,
        "value": None,
    }
    put_text(data, "value", dl.value)
    return data


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _origin(dl: Letter) -> str:
    h = dl.headers
    return f"{h.get(ORIGIN_TOPIC)}[{h.get(ORIGIN_PARTITION)}]@{h.get(ORIGIN_OFFSET)}"


def _last(n: int) -> Window:
    """The newest `n` records of each partition."""
    return lambda tp, start, end: (max(start, end - n), end)


def _whole(tp: Any, start: int, end: int) -> tuple[int, int]:
    return start, end


def _spans(ranges: dict[int, tuple[int, int]]) -> Window:
    """Only these [start, stop) offsets, by partition; nothing of the others."""
    return lambda tp, start, end: ranges.get(tp.partition, (end, end))


def _read(settings: Settings, window: Window) -> list[Letter]:
    """Oldest first, across partitions."""
    return sorted(
        dead_letter_topic.read(settings, window),
        key=lambda dl: (dl.timestamp, dl.partition, dl.offset),
    )


def _refuse_keyless_into_compacted(settings: Settings, letters: list[Letter]) -> None:
    """Kafka refuses a record without a key on a compacted topic: say so before sending any."""
    keyless = {dl.origin_topic: dl for dl in letters if dl.key is None}
    if not keyless:
        return
    from bookstore.kafka import admin_client
    from bookstore.topic_config import CLEANUP_POLICY, current_configs

    admin = admin_client(settings)
    try:
        policies = {t: c[CLEANUP_POLICY] for t, c in current_configs(admin, keyless).items()}
    finally:
        admin.close()
    for topic, dl in keyless.items():
        if "compact" in policies[topic]:
            raise CliError(
                f"{dl.coordinates} has no key and {topic} is compacted (Kafka refuses records "
                "without a key there): not replayed; publish it again with its id as key",
                2,
            )


dead_letters = typer.Typer(
    help="Records that could not be stored: list them, re-publish them after a fix.",
    no_args_is_help=True,
)
app.add_typer(dead_letters, name="dead-letters")


class Stage(enum.StrEnum):
    """The stages a dead letter can come from (its `error.stage` header)."""

    decode = "decode"
    validate = "validate"
    store = "store"


ORIGINS = f"this entity's topic ({', '.join(e.name for e in BUILT_IN)}, or an installed one's)"


def _origin_topic(names: entities.Topics, origin: str | None) -> str | None:
    """The topic of `--origin-topic` (an entity's name: with KAFKA_TOPIC_PREFIX, `customers`
    means <prefix>customers); any other name is a usage error (exit 2)."""
    if origin is None:
        return None
    if origin not in names.table.names:
        raise typer.BadParameter(
            f"{origin!r} is not one of: {', '.join(names.table.names)}", param_hint="--origin-topic"
        )
    return names.of(origin)


def _matches(dl: Letter, origin: str | None, stage: Stage | None) -> bool:
    return (origin is None or dl.origin_topic == origin) and (
        stage is None or dl.stage == stage.value
    )


def _preview(raw: bytes | None, width: int = 60) -> str:
    text = "" if raw is None else raw.decode("utf-8", errors="replace")
    return text if len(text) <= width else text[: width - 1] + "…"


@dead_letters.command("list")
def dead_letters_list(
    limit: int = typer.Option(50, "--limit", min=1, help="newest dead letters per partition"),
    origin_topic: Annotated[
        str | None, typer.Option("--origin-topic", metavar="ENTITY", help=f"only from {ORIGINS}")
    ] = None,
    stage: Annotated[Stage | None, typer.Option("--stage", help="only this error.stage")] = None,
    as_json: bool = JsonOption,
) -> None:
    """The newest dead letters: where each came from, at which stage and why."""
    settings = load_settings()
    origin = _origin_topic(entities.topics(settings), origin_topic)
    with reporting_errors():
        letters = [dl for dl in _read(settings, _last(limit)) if _matches(dl, origin, stage)]
    if as_json:
        print_json([_as_json(dl) for dl in letters])
        return
    rows = [
        [
            f"{dl.partition}:{dl.offset}",
            _origin(dl),
            dl.stage,
            dl.reason,
            _preview(dl.value),
        ]
        for dl in letters
    ]
    columns = ["dead letter", "origin", "stage", "reason", "value"]
    console().print(build_table(f"{len(rows)} dead letter(s)", columns, rows))


def _coordinate(raw: str) -> tuple[int, int]:
    partition, sep, offset = raw.partition(":")
    try:
        if sep:
            return int(partition), int(offset)
    except ValueError:
        pass
    raise typer.BadParameter(f"{raw!r}: expected PARTITION:OFFSET of a dead letter, e.g. 0:42")


@dead_letters.command("replay")
def dead_letters_replay(
    at: Annotated[
        list[str] | None,
        typer.Option(
            "--at", help="PARTITION:OFFSET of a dead letter (as `list` shows); repeatable"
        ),
    ] = None,
    origin_topic: Annotated[
        str | None, typer.Option("--origin-topic", metavar="ENTITY", help=f"all from {ORIGINS}")
    ] = None,
    stage: Annotated[
        Stage | None, typer.Option("--stage", help="all with this error.stage")
    ] = None,
    replay_all: bool = typer.Option(False, "--all", help="every dead letter"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show what would be re-published"),
    as_json: bool = JsonOption,
) -> None:
    """Re-publish dead letters to their origin topic (raw bytes and key unchanged), after a fix.

    The stores are idempotent, so replaying twice does no harm; a record that is still invalid
    comes back as a new dead letter.
    """
    coords = [_coordinate(c) for c in at or []]
    if not (coords or origin_topic or stage or replay_all):
        raise typer.BadParameter("choose what to replay: --at, --origin-topic, --stage or --all")
    settings = load_settings()
    names = entities.topics(settings)
    origin = _origin_topic(names, origin_topic)
    with reporting_errors():
        wanted = set(coords)
        ranges: dict[int, tuple[int, int]] = {}
        for p, o in coords:
            lo, hi = ranges.get(p, (o, o + 1))
            ranges[p] = (min(lo, o), max(hi, o + 1))
        window = _spans(ranges) if coords else _whole
        letters = [
            dl
            for dl in _read(settings, window)
            if _matches(dl, origin, stage) and (not coords or (dl.partition, dl.offset) in wanted)
        ]
        found = {(dl.partition, dl.offset) for dl in letters}
        unknown = [f"{p}:{o}" for p, o in coords if (p, o) not in found]
        if unknown:
            raise CliError(f"no such dead letter: {', '.join(unknown)}", EXIT_NOT_FOUND)
        bad = [dl for dl in letters if dl.origin_topic not in names.entities]
        if bad:
            origin = bad[0].origin_topic
            raise CliError(
                f"{bad[0].coordinates} has origin.topic {origin!r}, "
                f"not one of {', '.join(names.entities)}; not replayed",
                2,
            )
        _refuse_keyless_into_compacted(settings, letters)
        if not dry_run:
            by_topic: dict[str, list[tuple[bytes | None, bytes | None, list]]] = defaultdict(list)
            for dl in letters:
                header = ("replayed.from", dl.coordinates.encode())
                by_topic[dl.origin_topic].append((dl.key, dl.value, [header]))
            for topic, messages in by_topic.items():
                send_confirmed(settings, topic, messages)

    replayed = [
        {
            "dead_letter": f"{dl.partition}:{dl.offset}",
            "to": dl.origin_topic,
            "key": _text(dl.key),
        }
        for dl in letters
    ]
    if as_json:
        print_json({"dry_run": dry_run, "replayed": replayed})
        return
    verb = "would re-publish" if dry_run else "re-published"
    rows = [[r["dead_letter"], r["to"], r["key"]] for r in replayed]
    console().print(
        build_table(f"{verb} {len(rows)} record(s)", ["dead letter", "to", "key"], rows)
    )
