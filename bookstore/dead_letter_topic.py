"""The dead-letter topic: the original raw bytes, unchanged, with where they came from and why."""

from __future__ import annotations

from dataclasses import dataclass

from bookstore.config import Settings
from bookstore.entities import topics
from bookstore.kafka import read_topics, send_confirmed
from bookstore.records import Record


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    stage: str  # decode | validate | store
    reason: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("origin.topic", self.record.topic.encode()),
            ("origin.partition", str(self.record.partition).encode()),
            ("origin.offset", str(self.record.offset).encode()),
            ("error.stage", self.stage.encode()),
            ("error.reason", _bounded(self.reason).encode()),
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


def origins(settings: Settings) -> set[tuple[str, int, int]]:
    """The origin (topic, partition, offset) of every dead letter the topic holds."""
    origins = set()
    for batch in read_topics(settings, [topics(settings).dead_letters]):
        for message in batch:
            h = {k: v.decode("utf-8", "replace") for k, v in message.headers or ()}
            try:
                origin = (h["origin.topic"], int(h["origin.partition"]), int(h["origin.offset"]))
            except (KeyError, ValueError):
                continue  # not written by this pipeline
            origins.add(origin)
    return origins
