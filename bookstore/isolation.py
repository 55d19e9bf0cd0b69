"""Poison isolation: a batch write that fails for a reason other than a server being away is split
in halves, and again, until the records that fail alone are found (docs/contracts.md, bad input).

A record that fails alone while others of its batch are stored is about itself: it is refused
with the exception's type and message, and dead-lettered by the caller. When no record of the
batch can be stored at all and the failure is one nobody classified, it is about none of them (a
bug, a misconfigured server): `Unexplained` is raised so that the task retries and is parked.
Transient failures are never isolated: they are raised at once, and the whole batch is retried
(writes are idempotent, so what a split already stored is harmless to write again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bookstore.errors import Unexplained, Verdict, classify, describe
from bookstore.records import Record

log = logging.getLogger(__name__)

Item = tuple[Any, Record]  # (validated entity, the record it came from)
Write = Callable[[list[Item]], list[tuple[Record, str]]]  # returns the records it refused
Judge = Callable[[BaseException], Verdict]


@dataclass
class _Outcome:
    stored: int = 0
    refused: list[tuple[Record, str]] = field(default_factory=list)
    unexplained: list[tuple[Record, BaseException]] = field(default_factory=list)

    def add(self, other: _Outcome) -> _Outcome:
        self.stored += other.stored
        self.refused += other.refused
        self.unexplained += other.unexplained
        return self


def write_isolating(
    write: Write, batch: list[Item], stores: tuple[Any, ...]
) -> list[tuple[Record, str]]:
    """Write the batch; return the records refused (with why), each found by splitting. A
    failure is judged with `stores` (bookstore.errors.classify)."""

    def judged(exc: BaseException) -> Verdict:
        return classify(exc, stores)

    outcome = _write(write, batch, judged)
    if outcome.unexplained and outcome.stored == 0:
        record, exc = outcome.unexplained[0]
        raise Unexplained(
            f"none of {len(batch)} record(s) could be stored ({record.coordinates} and others "
            f"fail alone): {describe(exc)}"
        ) from exc
    return outcome.refused + [(record, describe(exc)) for record, exc in outcome.unexplained]


def _write(write: Write, batch: list[Item], judged: Judge) -> _Outcome:
    try:
        refused = write(batch)
    except Exception as exc:
        if judged(exc) is Verdict.TRANSIENT:
            raise
        if len(batch) == 1:
            return _alone(write, batch, exc, judged)
        log.warning(
            "a batch of %d failed (%s); splitting it to find why", len(batch), describe(exc)
        )
        middle = len(batch) // 2
        return _write(write, batch[:middle], judged).add(_write(write, batch[middle:], judged))
    return _Outcome(stored=len(batch) - len(refused), refused=refused)


def _alone(write: Write, batch: list[Item], exc: Exception, judged: Judge) -> _Outcome:
    """One record that failed: refused if the failure is about it; an unexplained failure is
    tried once more first, so that a passing hiccup does not cost a valid record."""
    record = batch[0][1]
    if judged(exc) is Verdict.UNEXPLAINED:
        try:
            refused = write(batch)
        except Exception as again:
            if judged(again) is Verdict.TRANSIENT:
                raise
            if judged(again) is Verdict.UNEXPLAINED:
                return _Outcome(unexplained=[(record, again)])
            exc = again
        else:
            return _Outcome(stored=1 - len(refused), refused=refused)
    return _Outcome(refused=[(record, describe(exc))])
