"""The message formats as JSON Schema (docs/schemas/): generated from the models, judging
messages as the models do, matching docs/contracts.md, and never rewritten to refuse what a
version accepted (a schema registry's backward compatibility)."""

from __future__ import annotations

import copy
import json
import re
import uuid

import jsonschema
import pytest

from bookstore.message_schemas import backward_breaks, file_name, schema, write
from bookstore.schemas import Rejected, parse
from tests.support import REPO, TABLE, run

SCHEMAS = REPO / "docs/schemas"
ENTITIES = {e.name: e for e in TABLE.rows}
CONTRACT_ROW = re.compile(r"^\| `(\w+)` \| (.+) \|$", re.M)


@pytest.mark.parametrize("entity", TABLE.rows, ids=lambda e: e.name)
def test_the_committed_schema_is_the_models(entity):
    current = schema(entity)
    path = SCHEMAS / file_name(entity, current["version"])
    assert path.exists(), f"run `python -m bookstore schemas --write docs/schemas` ({path.name})"
    assert json.loads(path.read_text()) == current, (
        f"{path.name} differs from the model: run `python -m bookstore schemas --write "
        "docs/schemas` (it refuses a change that would refuse what this version accepted)"
    )


def _judged_alike(entity, message) -> bool:
    """Whether the schema accepts `message`, having checked the model agrees."""
    try:
        parse(entity.model_class(), json.dumps(message).encode())
        model = True
    except Rejected:
        model = False
    try:
        jsonschema.validate(message, schema(entity))
        accepted = True
    except jsonschema.ValidationError:
        accepted = False
    assert accepted == model, f"schema says {accepted}, the model {model}: {message}"
    return accepted


@pytest.mark.parametrize("entity", TABLE.rows, ids=lambda e: e.name)
def test_the_schema_judges_as_the_model_does(entity):
    valid = entity.model_class().example(str(uuid.uuid4()), 3)
    assert _judged_alike(entity, valid)
    assert _judged_alike(entity, {**valid, "an_extra_field": 1})  # tolerated everywhere
    for field in schema(entity)["required"]:
        assert not _judged_alike(entity, {k: v for k, v in valid.items() if k != field})
    assert not _judged_alike(entity, {**valid, "id": 7})


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("quantity", 0, False),
        ("quantity", True, False),
        ("quantity", 2.5, False),
        ("timestamp", 1_700_000_000.25, True),
        ("timestamp", "2024-05-01T10:00:00", True),  # no zone: UTC
        ("timestamp", -1, False),
    ],
)
def test_an_order_is_judged_alike_field_by_field(field, value, accepted):
    orders = ENTITIES["orders"]
    valid = orders.model_class().example(str(uuid.uuid4()), 1)
    assert _judged_alike(orders, {**valid, field: value}) is accepted


@pytest.mark.parametrize("entity", TABLE.rows, ids=lambda e: e.name)
def test_the_contract_names_every_field_of_the_schema(entity):
    rows = dict(CONTRACT_ROW.findall((REPO / "docs/contracts.md").read_text()))
    named = set(re.findall(r"`([A-Za-z_]+)`", rows[entity.name]))
    assert named == set(schema(entity)["properties"])


def _orders() -> dict:
    return schema(ENTITIES["orders"])


def _books() -> dict:
    return schema(ENTITIES["books"])


def _changed(document: dict, change) -> dict:
    changed = copy.deepcopy(document)
    change(changed)
    return changed


@pytest.mark.parametrize(
    ("base", "change", "broken"),
    [
        (_orders, lambda s: s["required"].append("coupon"), "`coupon` is now required"),
        (_orders, lambda s: s["properties"]["quantity"].update(maximum=10), "maximum lowered"),
        (_orders, lambda s: s["properties"]["quantity"].update(minimum=2), "minimum raised"),
        (_orders, lambda s: s["properties"]["book_id"].update(pattern="^b"), "pattern is now"),
        (_orders, lambda s: s.update(additionalProperties=False), "fields it does not name"),
        (_books, lambda s: s["properties"]["isbn"].update(anyOf=[{"type": "string"}]), "null"),
        (_orders, lambda s: s["properties"]["timestamp"]["anyOf"].pop(1), "string"),
    ],
)
def test_a_change_that_refuses_what_was_accepted_is_found(base, change, broken):
    old = base()
    breaks = backward_breaks(old, _changed(old, change))
    assert any(broken in b for b in breaks), breaks


def test_a_change_that_accepts_more_is_compatible():
    old = _orders()

    def widen(s):
        s["properties"]["note"] = {"type": "string"}  # a new optional field
        s["properties"]["quantity"]["maximum"] = 10_000_000
        s["required"].remove("timestamp")

    assert backward_breaks(old, _changed(old, widen)) == []


def test_a_version_is_not_rewritten_to_refuse_what_it_accepted(tmp_path):
    orders = ENTITIES["orders"]
    path = tmp_path / file_name(orders, schema(orders)["version"])
    wider = _changed(schema(orders), lambda s: s["properties"]["quantity"].pop("maximum"))
    path.write_text(json.dumps(wider))  # as if the model had accepted any quantity before
    with pytest.raises(ValueError, match="maximum lowered to 1000000.*raise its version"):
        write(orders, tmp_path)
    refused = run("-m", "bookstore", "schemas", "--write", str(tmp_path))
    assert refused.returncode == 2 and "raise its version" in refused.stderr, refused.stderr
