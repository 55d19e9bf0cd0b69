"""The one error policy (docs/contracts.md, bad input): what a failure means decides its fate.

Every failure is one of three kinds, judged by what it means (SQLSTATE class, MongoDB error code,
Redis error prefix, Kafka's own retriable flag, encoding errors), never by the Python base class it
happens to inherit (psycopg2's "index row too big" is an `OperationalError`, like a lost
connection; FerretDB answers a `NaN` by closing the connection). Each store module says what its
own driver's failures mean (its store class's `classify`); this module holds the verdicts, the
policy and what is no store's (Kafka, the operating system, encoding):

- TRANSIENT: the server or broker is unreachable, restarting, timing out, failing over, out of disk.
  Retry the whole batch with backoff and jitter, for as long as it takes. Never a dead letter.
- RECORD: something about one record that can never succeed. Dead-letter that record, store the
  rest of its batch.
- UNEXPLAINED: nobody foresaw it. The batch is split until the record that fails alone is found;
  a failure that is about no record keeps its task retrying and, after a bound, parks it.
"""

from __future__ import annotations

import enum
import errno
import random
import sys
from collections.abc import Iterable
from typing import Any


class Verdict(enum.Enum):
    TRANSIENT = "transient"
    RECORD = "record"
    UNEXPLAINED = "unexplained"


class Unavailable(RuntimeError):
    """A server cannot be reached now: whatever needed it is retried, never dropped."""


class StoreUnavailable(Unavailable):
    """A store cannot be reached now."""


class Refused(Exception):
    """A store refuses this record for a reason retrying cannot fix (e.g. an e-mail held by
    another customer); the reason goes into the dead letter."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unexplained(RuntimeError):
    """A batch failed for a reason that is about none of its records (after isolation)."""


_OS_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR, errno.ENOMEM}


def classify(exc: BaseException, stores: Iterable[Any] = ()) -> Verdict:
    """What a failure means for the batch that met it (see the module docstring). `stores`: the
    store classes whose drivers may have raised it (an entity table's, `loaded_stores()`), each
    asked first what its own driver's failures mean."""
    if isinstance(exc, Unavailable):
        return Verdict.TRANSIENT
    if isinstance(exc, Refused):
        return Verdict.RECORD
    for store in stores:
        verdict = store.classify(exc)
        if verdict is not None:
            return verdict
    if raised_by(exc, "kafka.errors", "KafkaError"):
        return Verdict.TRANSIENT if exc.retriable else Verdict.UNEXPLAINED
    if isinstance(exc, UnicodeError | RecursionError | OverflowError):
        return Verdict.RECORD  # this record cannot be encoded for the store
    if isinstance(exc, OSError) and exc.errno in _OS_TRANSIENT:
        return Verdict.TRANSIENT
    if isinstance(exc, ConnectionError | TimeoutError):
        return Verdict.TRANSIENT
    return Verdict.UNEXPLAINED


def raised_by(exc: BaseException, module: str, base: str) -> bool:
    """isinstance(exc, module.base), for a driver that is loaded (else exc cannot be its)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, base))


def describe(exc: BaseException, limit: int = 500) -> str:
    """A dead letter's or a log line's reason: the exception's type and first line, bounded
    (some drivers echo the whole offending value)."""
    if isinstance(exc, Refused):
        text = exc.reason
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        name = type(exc).__name__
        text = first if first.startswith(name) else f"{name}: {first}" if first else name
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_delay(attempt: int, cap: float, base: float = 1.0) -> float:
    """The one backoff: exponential from `base`, capped at `cap` seconds, with jitter (the
    workers retrying after one outage do not all come back in step)."""
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)
