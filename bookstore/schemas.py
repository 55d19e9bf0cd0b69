"""Message schemas (SPEC "Validation"): what is accepted, and why a record is rejected.

`parse(topic, raw)` returns a validated entity or raises `Rejected` with the stage (`decode` or
`validate`) and a human-readable reason, which go into the dead letter's headers.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from bookstore.topics import BOOKS, CUSTOMERS, ORDERS


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


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUIDStr
    name: StrictStr
    email: StrictStr

    _check_id = field_validator("id")(_uuid)


class Book(BaseModel):
    """Extra fields are kept (MongoDB holds flexible documents) but sanitised in `document()`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: NonEmptyStr
    isbn: StrictStr | None = None
    title: StrictStr
    authors: list[StrictStr] = []
    publishedDate: StrictStr | None = None  # noqa: N815 (the SPEC's field name)

    def document(self) -> dict[str, Any]:
        """The MongoDB document: `_id` = the Google id; no `$` operators or dotted paths."""
        extra = {k: v for k, v in (self.model_extra or {}).items() if k != "_id"}
        doc = {
            **_safe_keys(extra),
            "isbn": self.isbn,
            "title": self.title,
            "authors": self.authors,
            "publishedDate": self.publishedDate,
        }
        return {"_id": self.id, **doc}


class Order(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUIDStr
    customer_id: UUIDStr
    book_id: NonEmptyStr
    quantity: StrictInt = Field(ge=1)
    timestamp: datetime

    _check_ids = field_validator("id", "customer_id")(_uuid)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _epoch_or_iso(cls, value: Any) -> datetime:
        if isinstance(value, bool):
            raise ValueError("must be epoch seconds or an ISO-8601 string")
        if isinstance(value, int | float):
            try:
                return datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                raise ValueError("epoch seconds out of range") from None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("must be an ISO-8601 date-time") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        raise ValueError("must be epoch seconds or an ISO-8601 string")

    @property
    def epoch_seconds(self) -> float:
        return self.timestamp.timestamp()

    @property
    def iso_timestamp(self) -> str:
        """ISO-8601 in UTC, as Redis keeps it."""
        return self.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


MODELS: dict[str, type[BaseModel]] = {CUSTOMERS: Customer, BOOKS: Book, ORDERS: Order}


def parse(topic: str, raw: bytes | None) -> BaseModel:
    """Decode and validate one raw Kafka value of `topic`."""
    if raw is None:
        raise Rejected("decode", "empty value (tombstone)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            "decode", f"value is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected("decode", f"value is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict):
        raise Rejected("validate", f"value must be a JSON object, got {type(data).__name__}")
    try:
        return MODELS[topic].model_validate(data)
    except ValidationError as exc:
        raise Rejected("validate", _reason(exc)) from None


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
