"""Message schemas (docs/contracts.md, bad input): what is accepted, and why a record is not.

`parse(model, raw)` returns a validated entity or raises `Rejected` with the stage (`decode` or
`validate`) and a human-readable reason, which go into the dead letter's headers. Whatever a store
could not hold faithfully is refused here, before any store sees it: NUL characters and unpaired
surrogates, non-finite numbers, deep nesting, oversized values and fields.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

RECORD_MAX_BYTES = 1024 * 1024  # default of the RECORD_MAX_BYTES setting
MAX_DEPTH = 32  # objects and arrays, the value itself being level 1
EMAIL_MAX = 254  # RFC 5321's longest usable address
TEXT_MAX = 1000  # name, title, one author
AUTHORS_MAX = 100
QUANTITY_MAX = 1_000_000
EPOCH_MAX = 253402300800  # 10000-01-01T00:00:00Z: timestamps stay within years 1970-9999


# An order's timestamp as its JSON Schema says it (the validator below is the judge).
TIMESTAMP_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0, "exclusiveMaximum": EPOCH_MAX},
        {"type": "string"},
    ],
    # no "format": date-time: that is RFC 3339's, which requires a zone; ISO-8601 does not
    "description": "epoch seconds, or an ISO-8601 date-time (no zone: UTC), years 1970-9999",
}


class Rejected(Exception):
    """A record that retrying cannot fix: it goes to the dead-letter topic."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("must be a UUID string") from None


UUIDStr = Annotated[StrictStr, Field(description="UUID; normalised to lower-case hyphenated")]
NonEmptyStr = Annotated[StrictStr, Field(min_length=1)]
Text = Annotated[StrictStr, Field(max_length=TEXT_MAX)]


# Each model's `version` is its JSON Schema's (bookstore/message_schemas.py, docs/schemas/): raise
# it when a change refuses a message the earlier version accepted.
class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"version": 1})

    id: UUIDStr
    name: Text
    email: Annotated[StrictStr, Field(max_length=EMAIL_MAX)]

    _check_id = field_validator("id")(_uuid)

    @staticmethod
    def example(key: str, n: int) -> dict[str, Any]:
        """Version `n` (≥ 1) of a valid record with id `key` (a UUID string): what the store
        contract and the benchmarks send (every entity's model has one)."""
        return {"id": key, "name": f"Ana {n}", "email": f"v{n}.{key}@example.com"}


class Book(BaseModel):
    """A book as Google Books describes it. Fields it does not name are kept (MongoDB holds
    flexible documents), less keys starting with `$` or holding `.`."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, json_schema_extra={"version": 1}
    )

    id: NonEmptyStr
    isbn: StrictStr | None = None
    title: Text
    authors: Annotated[list[Text], Field(max_length=AUTHORS_MAX)] = []
    publishedDate: StrictStr | None = None  # noqa: N815 (the message's field name)

    @staticmethod
    def example(key: str, n: int) -> dict[str, Any]:
        return {"id": key, "isbn": None, "title": f"Edição {n}", "authors": ["A"] * min(n, 5)}

    def document(self) -> dict[str, Any]:
        """The MongoDB document: `_id` = the Google id; no `$` operators or dotted paths."""
        extra = {k: v for k, v in (self.model_extra or {}).items() if k not in RESERVED}
        doc = {
            **_safe_keys(extra),
            "isbn": self.isbn,
            "title": self.title,
            "authors": self.authors,
            "publishedDate": self.publishedDate,
        }
        return {"_id": self.id, **doc}


class Order(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"version": 1})

    id: UUIDStr
    customer_id: UUIDStr
    book_id: NonEmptyStr
    quantity: StrictInt = Field(ge=1, le=QUANTITY_MAX)
    timestamp: Annotated[datetime, WithJsonSchema(TIMESTAMP_SCHEMA)]

    _check_ids = field_validator("id", "customer_id")(_uuid)

    @staticmethod
    def example(key: str, n: int) -> dict[str, Any]:
        """Version `n` belongs to customer n: versions move an order between histories."""
        return {
            "id": key,
            "customer_id": str(uuid.UUID(int=n)),
            "book_id": f"b{n}",
            "quantity": min(n, QUANTITY_MAX),
            "timestamp": 1_700_000 + n,
        }

    @field_validator("timestamp", mode="before")
    @classmethod
    def _epoch_or_iso(cls, value: Any) -> datetime:
        if isinstance(value, bool):
            raise ValueError("must be epoch seconds or an ISO-8601 string")
        if isinstance(value, int | float):
            if not 0 <= value < EPOCH_MAX:
                raise ValueError("epoch seconds outside the years 1970-9999")
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be an ISO-8601 date-time") from None
            try:
                parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except OverflowError:
                raise ValueError("date-time outside the years 1970-9999") from None
            if parsed.year < 1970:
                raise ValueError("date-time outside the years 1970-9999")
            return parsed
        raise ValueError("must be epoch seconds or an ISO-8601 string")

    @property
    def epoch_seconds(self) -> float:
        return self.timestamp.timestamp()

    @property
    def iso_timestamp(self) -> str:
        """ISO-8601 in UTC, as Redis keeps it."""
        return self.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


RESERVED = ("_id", "_source")  # book fields the store sets itself


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], raw: bytes | None, max_bytes: int = RECORD_MAX_BYTES) -> M:
    """Decode and validate one raw Kafka value as a `model` (an entity's schema, from the entity
    table; docs/contracts.md, bad input)."""
    if raw is None:
        raise Rejected("decode", "empty value (tombstone)")
    if len(raw) > max_bytes:
        raise Rejected(
            "validate", f"value is {len(raw)} bytes, over RECORD_MAX_BYTES ({max_bytes})"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "decode", f"value is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Rejected("decode", f"value is not valid JSON ({exc.msg} at char {exc.pos})") from None
    except _NotJson as exc:
        raise Rejected("decode", str(exc)) from None
    except _NotFinite as exc:
        raise Rejected("validate", str(exc)) from None
    except RecursionError:
        raise Rejected("validate", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise Rejected("validate", f"a number out of range ({exc})") from None
    problem = _unstorable(data) if _may_be_unstorable(text) else None
    if problem:
        raise Rejected("validate", problem)
    if not isinstance(data, dict):
        raise Rejected("validate", f"value must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Rejected("validate", _reason(exc)) from None


class _NotJson(ValueError):
    pass


def _not_json(constant: str) -> None:
    raise _NotJson(f"value is not valid JSON ({constant} is not a JSON number)")


class _NotFinite(ValueError):
    pass


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # e.g. 1e400
        raise _NotFinite(f"a number out of range ({literal[:20]} is not finite)")
    return value


# The only ways to put U+0000 or a surrogate into a string of valid UTF-8 JSON text (raw control
# characters are not JSON): the escapes \u0000 and \uD800-\uDFFF (an escaped backslash before
# "u0000" matches too, which only costs a walk).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


# One decoder for every record (json.loads with options would build a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite_float)


def _may_be_unstorable(text: str) -> bool:
    """Cheap test on the JSON text, so that most records skip the walk of `_unstorable`: a risky
    escape, or more brackets than MAX_DEPTH (nothing less can nest that deep)."""
    return text.count("[") + text.count("{") > MAX_DEPTH or _RISKY_ESCAPE.search(text) is not None


def _unstorable(value: Any) -> str | None:
    """Why no store could hold this value faithfully, if so: nesting deeper than MAX_DEPTH, a
    string (key or value, at any depth) with U+0000 or an unpaired surrogate. (Numbers that are
    not finite are refused while parsing.)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                for key in item:
                    problem = _bad_text(key)
                    if problem:
                        return f"a key {problem}"
                children = item.values()
            else:
                children = item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            problem = _bad_text(item)
            if problem:
                return f"a string {problem}"
    return None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "holds U+0000 (NUL)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an unpaired surrogate"
    return None


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "value"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def _safe_keys(value: Any) -> Any:
    """Drop keys that MongoDB would read as operators (`$…`) or paths (`a.b`), at any depth."""
    if isinstance(value, dict):
        return {
            k: _safe_keys(v)
            for k, v in value.items()
            if isinstance(k, str) and not k.startswith("$") and "." not in k
        }
    if isinstance(value, list):
        return [_safe_keys(v) for v in value]
    return value
