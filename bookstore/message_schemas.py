"""Each topic's message format as JSON Schema (draft 2020-12), generated from the pydantic model
that judges it (`python -m bookstore schemas`; committed in docs/schemas/), so that producers
written by others can validate before they send.

A message the schema refuses is refused by the pipeline too; one it accepts may still be
dead-lettered for what JSON Schema cannot say (docs/contracts.md: U+0000, unpaired surrogates,
nesting, size). Each model carries its schema's `version` (`json_schema_extra`). A version is
never rewritten to refuse what it accepted: such a change raises the version, and the earlier
file stays (a schema registry's backward compatibility, checked by `backward_breaks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bookstore.entities import Entity

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema(entity: Entity) -> dict[str, Any]:
    """The JSON Schema of `entity`'s messages, with its version."""
    generated = entity.model_class().model_json_schema(mode="validation")
    version = generated.pop("version", 1)
    return {
        "$schema": DIALECT,
        "$id": f"https://livros-dados.example/schemas/{entity.name}.v{version}.json",
        "version": version,
        **generated,
    }


def file_name(entity: Entity, version: int) -> str:
    return f"{entity.name}.v{version}.json"


def text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(entity: Entity, directory: Path) -> Path:
    """Write `entity`'s schema into `directory`; refuses (ValueError) to rewrite a version so
    that it refuses a message the committed file of that version accepts."""
    current = schema(entity)
    path = directory / file_name(entity, current["version"])
    if path.exists():
        breaks = backward_breaks(json.loads(path.read_text()), current)
        if breaks:
            raise ValueError(
                f"{path.name}: the model now refuses what this version accepted ("
                + "; ".join(breaks)
                + "): raise its version (json_schema_extra) instead"
            )
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(text(current))
    return path


_NARROWER_IF_HIGHER = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_NARROWER_IF_LOWER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


def backward_breaks(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """What `new` refuses that `old` accepted, as far as the keywords the models generate go:
    a field newly required, a type or alternative dropped, a bound tightened, a pattern or
    format added or changed, additional fields no longer allowed. Empty: backward compatible."""
    breaks = []
    at = where or "the message"
    for key in set(new.get("required", [])) - set(old.get("required", [])):
        breaks.append(f"{at}: `{key}` is now required")
    if old.get("additionalProperties", True) is not False and (
        new.get("additionalProperties", True) is False
    ):
        breaks.append(f"{at}: fields it does not name are now refused")
    if _types(new) and not _types(old) <= _types(new):
        dropped = ", ".join(sorted(_types(old) - _types(new)))
        breaks.append(f"{at}: no longer accepts {dropped}")
    for key in _NARROWER_IF_HIGHER:
        if key in new and new[key] > old.get(key, float("-inf")):
            breaks.append(f"{at}: {key} raised to {new[key]}")
    for key in _NARROWER_IF_LOWER:
        if key in new and new[key] < old.get(key, float("inf")):
            breaks.append(f"{at}: {key} lowered to {new[key]}")
    for key in ("pattern", "format", "const", "enum"):
        if key in new and new[key] != old.get(key):
            breaks.append(f"{at}: {key} is now {new[key]!r}")
    old_fields, new_fields = old.get("properties", {}), new.get("properties", {})
    for name in old_fields.keys() & new_fields.keys():
        breaks += backward_breaks(old_fields[name], new_fields[name], f"`{name}`")
    if "items" in old and "items" in new:
        breaks += backward_breaks(old["items"], new["items"], f"{at}'s items")
    return breaks


def _types(node: dict[str, Any]) -> set[str]:
    """The JSON types a schema node accepts (through anyOf too); empty: any."""
    if "anyOf" in node:
        found: set[str] = set()
        for option in node["anyOf"]:
            types = _types(option)
            if not types:
                return set()
            found |= types
        return found
    kind = node.get("type")
    types = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    return types | {"integer"} if "number" in types else types  # a number may be an integer
