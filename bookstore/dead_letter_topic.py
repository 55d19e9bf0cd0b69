"""The dead-letter topic: the original raw bytes, unchanged, with where they came from and why.
Written by the workers (`DeadLetter`, `publish`), read by `rebuild`, `verify` and the CLI
(`Letter`, `read`, `origins`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.kafka import Window, read_topics, send_confirmed
from bookstore.records import Record

# A dead letter's headers (docs/contracts.md)
ORIGIN_TOPIC = "origin.topic"
ORIGIN_PARTITION = "origin.partition"
ORIGIN_OFFSET = "origin.offset"
STAGE = "error.stage"  # decode | validate | store
REASON = "error.reason"


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    stage: str  # decode | validate | store
    reason: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            (ORIGIN_TOPIC, self.record.topic.encode()),
            (ORIGIN_PARTITION, str(self.record.partition).encode()),
            (ORIGIN_OFFSET, str(self.record.offset).encode()),
            (STAGE, self.stage.encode()),
            (REASON, _bounded(self.reason).encode()),
        ]


REASON_MAX = 1000  # characters: a reason names the problem, it never carries the value


def _bounded(reason: str) -> str:
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"


def publish(settings: Settings, letters: list[DeadLetter]) -> None:
    """Publish and wait for Kafka's acknowledgement (before the task that found them acks).

    The `dead-letters` topic accepts any record its origin topic accepted (see
    bookstore.kafka.ensure_topics), so a dead letter is never too large to keep.
    """
    if letters:
        send_confirmed(
            settings,
            topics(settings).dead_letters,
            [(dl.record.key, dl.record.value, dl.headers()) for dl in letters],
        )


@dataclass(frozen=True)
class Letter:
    """A dead letter as read back from the topic: where it is, its bytes and its headers."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @classmethod
    def from_kafka(cls, message: Any) -> Letter:
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in message.headers or ()}
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.timestamp,
            message.key,
            message.value,
            headers,
        )

    @property
    def coordinates(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def origin_topic(self) -> str | None:
        return self.headers.get(ORIGIN_TOPIC)

    @property
    def origin(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the record it holds; None: not written by this pipeline."""
        h = self.headers
        try:
            return h[ORIGIN_TOPIC], int(h[ORIGIN_PARTITION]), int(h[ORIGIN_OFFSET])
        except (KeyError, ValueError):
            return None

    @property
    def stage(self) -> str | None:
        return self.headers.get(STAGE)

    @property
    def reason(self) -> str | None:
        return self.headers.get(REASON)


def read(
    settings: Settings, window: Window = lambda tp, start, end: (start, end)
) -> Iterator[Letter]:
    """The dead letters the topic holds now, partition by partition (each narrowed by `window`,
    as bookstore.kafka.read_topics)."""
    for batch in read_topics(settings, [topics(settings).dead_letters], window=window):
        yield from map(Letter.from_kafka, batch)


def origins(settings: Settings) -> set[tuple[str, int, int]]:
    """The origin (topic, partition, offset) of every dead letter the topic holds."""
    return {origin for dl in read(settings) if (origin := dl.origin) is not None}
