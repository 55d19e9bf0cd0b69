"""A Kafka record as it travels through Celery and lands in the audit log.

The bridge does not parse data: it carries each record's coordinates and raw value. The wire form
is the audit line (docs/contracts.md), so the audit task writes it as it comes. The value stays
the raw text (never re-serialised); bytes that are not UTF-8 travel as base64 in `value_b64`.

A batch travels as *lines*: the records' audit lines (one JSON object each, ASCII, newline
terminated) in one string, encoded once by the bridge and carried unchanged by the persistence
task and the audit task alike; the audit task writes it to the file as it is.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

# One encoder for every line (json.dumps with options would build one per call). ASCII output:
# its size inside a JSON task message is then exact and cheap to count (see `line_size`).
_ENCODER = json.JSONEncoder(separators=(",", ":"))


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


def audit_line(record: Record) -> str:
    """The record's audit line, newline included."""
    return _ENCODER.encode(record.to_wire()) + "\n"


def line_size(line: str) -> int:
    """Bytes that an ASCII line takes inside a JSON string: quotes, backslashes and the final
    newline are escaped with one more byte each."""
    return len(line) + line.count('"') + line.count("\\") + 1


def from_lines(lines: str | list[dict[str, Any]]) -> list[Record]:
    """The records of a batch, from its lines (or from a list of wire dicts, as tasks queued by
    an earlier bridge carry them)."""
    if isinstance(lines, list):
        return [Record.from_wire(w) for w in lines]
    return [Record.from_wire(w) for w in json.loads("[" + ",".join(lines.splitlines()) + "]")]


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
