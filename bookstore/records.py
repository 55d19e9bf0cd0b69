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
