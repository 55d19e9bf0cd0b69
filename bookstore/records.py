"""A Kafka record as it travels through Celery and lands in the audit log.

The bridge does not parse data: it carries each record's coordinates and raw value. The wire form
is the audit line of the SPEC, so the audit task writes it as it comes. The value stays the raw
text (never re-serialised); bytes that are not UTF-8 travel as base64 in `value_b64`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp: int
    value: bytes | None

    @classmethod
    def from_kafka(cls, msg: Any) -> Record:
        """From a kafka-python ConsumerRecord (raw bytes, no deserializer)."""
        return cls(msg.topic, msg.partition, msg.offset, msg.key, msg.timestamp, msg.value)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": None,
            "timestamp": self.timestamp,
            "value": None,
        }
        put_text(wire, "key", self.key)
        put_text(wire, "value", self.value)
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Record:
        return cls(
            wire["topic"],
            wire["partition"],
            wire["offset"],
            _get_bytes(wire, "key"),
            wire["timestamp"],
            _get_bytes(wire, "value"),
        )

    @property
    def coordinates(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def kafka_order(self) -> tuple[int, int, int]:
        """(timestamp, partition, offset): how stores decide which of two records is later
        ("last write wins in Kafka order"), so a late redelivery never rolls an entity back."""
        return (self.timestamp, self.partition, self.offset)


_ASCII = bytes(range(0x80))
_ESCAPED = bytes(range(0x20)) + b'"\\'  # JSON writes these as \u00XX, \" or \\
_NOT_ESCAPED = bytes(b for b in range(0x100) if b not in _ESCAPED)
WIRE_OVERHEAD = 160  # field names, coordinates, timestamp, separators


def wire_size(record: Record) -> int:
    """An upper bound of the record's size inside a JSON task message, cheap to compute.

    Celery's JSON escapes non-ASCII text as \\uXXXX (at most 3 bytes per UTF-8 byte; base64 of
    bytes that are not UTF-8 is less) and control characters, quotes and backslashes in up to 6.
    """
    size = WIRE_OVERHEAD + len(record.topic)
    for raw in (record.key, record.value):
        if raw:
            escaped = len(raw.translate(None, _NOT_ESCAPED))
            non_ascii = len(raw.translate(None, _ASCII))
            size += len(raw) + 5 * escaped + 2 * non_ascii
    return size


def put_text(wire: dict[str, Any], field: str, raw: bytes | None) -> None:
    """wire[field] = raw as text if it is UTF-8, else wire[field_b64] = its base64."""
    if raw is None:
        return
    try:
        wire[field] = raw.decode("utf-8")
    except UnicodeDecodeError:
        wire[f"{field}_b64"] = base64.b64encode(raw).decode("ascii")


def _get_bytes(wire: dict[str, Any], field: str) -> bytes | None:
    if wire.get(field) is not None:
        return wire[field].encode("utf-8")
    if wire.get(f"{field}_b64") is not None:
        return base64.b64decode(wire[f"{field}_b64"])
    return None
