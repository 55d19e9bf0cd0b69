"""The one error policy (docs/contracts.md, bad input): what a failure means decides its fate.

Every failure is one of three kinds, judged by what it means (SQLSTATE class, MongoDB error code,
Redis error prefix, Kafka's own retriable flag, encoding errors), never by the Python base class it
happens to inherit (psycopg2's "index row too big" is an `OperationalError`, like a lost
connection; FerretDB answers a `NaN` by closing the connection):

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg2
    import pymongo.errors
    import redis

# The drivers are not imported here: a failure of one can only come from a driver already loaded
# (its module is in sys.modules), and the CLI's `--help` must not pay for loading them all.


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


# PostgreSQL SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_TRANSIENT = {
    "08",  # connection exception
    "40",  # transaction rollback: serialization failure, deadlock
    "53",  # insufficient resources: disk full, out of memory, too many connections
    "57",  # operator intervention: shutdown, cannot connect now, statement timeout
    "58",  # system error: I/O error
}
_PG_TRANSIENT_CODES = {"55P03", "55006"}  # lock not available, object in use
_PG_RECORD = {
    "22",  # data exception: bad encoding, value out of range, string too long
    "23",  # integrity constraint violation
    "54",  # program limit exceeded: index row too big, too many columns
}

# MongoDB error codes (src/mongo/base/error_codes.yml), as MongoDB and FerretDB send them.
_MONGO_TRANSIENT = {
    6,  # HostUnreachable
    7,  # HostNotFound
    24,  # LockTimeout
    46,  # LockBusy
    50,  # MaxTimeMSExpired
    64,  # WriteConcernFailed
    89,  # NetworkTimeout
    91,  # ShutdownInProgress
    112,  # WriteConflict
    117,  # ConflictingOperationInProgress
    189,  # PrimarySteppedDown
    202,  # NetworkInterfaceExceededTimeLimit
    262,  # ExceededTimeLimit
    9001,  # SocketException
    10107,  # NotWritablePrimary
    11600,  # InterruptedAtShutdown
    11602,  # InterruptedDueToReplStateChange
    13435,  # NotPrimaryNoSecondaryOk
    13436,  # NotPrimaryOrSecondary
    14031,  # OutOfDiskSpace
}
_MONGO_RECORD = {
    2,  # BadValue (FerretDB: infinity, nested arrays, invalid keys)
    9,  # FailedToParse
    14,  # TypeMismatch
    15,  # Overflow
    52,  # DollarPrefixedFieldName
    55,  # InvalidDBRef
    56,  # EmptyFieldName
    57,  # DottedFieldName
    121,  # DocumentValidationFailure
    10334,  # BSONObjectTooLarge
    17280,  # KeyTooLong
}

# Redis error prefixes that say "the server cannot write now" rather than "this write is wrong".
_REDIS_TRANSIENT = (
    "MISCONF",
    "OOM",
    "LOADING",
    "READONLY",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
    "CLUSTERDOWN",
)

_OS_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR, errno.ENOMEM}


def classify(exc: BaseException) -> Verdict:
    """What a failure means for the batch that met it (see the module docstring)."""
    if isinstance(exc, Unavailable):
        return Verdict.TRANSIENT
    if isinstance(exc, Refused):
        return Verdict.RECORD
    if raised_by(exc, "psycopg2", "Error"):
        return _postgres(exc)
    if raised_by(exc, "pymongo.errors", "PyMongoError"):
        return _mongo(exc)
    if raised_by(exc, "redis", "RedisError"):
        return _redis(exc)
    if raised_by(exc, "kafka.errors", "KafkaError"):
        return Verdict.TRANSIENT if exc.retriable else Verdict.UNEXPLAINED
    if isinstance(exc, UnicodeError | RecursionError | OverflowError) or raised_by(
        exc, "bson.errors", "InvalidDocument"
    ):
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


def _postgres(exc: psycopg2.Error) -> Verdict:
    import psycopg2

    code = exc.pgcode
    if code is None:  # raised by the client: the connection failed or was lost
        if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
            return Verdict.TRANSIENT
        return Verdict.UNEXPLAINED
    if code[:2] in _PG_TRANSIENT or code in _PG_TRANSIENT_CODES:
        return Verdict.TRANSIENT
    if code[:2] in _PG_RECORD:
        return Verdict.RECORD
    return Verdict.UNEXPLAINED


def _mongo(exc: pymongo.errors.PyMongoError) -> Verdict:
    import pymongo.errors

    if isinstance(
        exc,
        pymongo.errors.ConnectionFailure
        | pymongo.errors.ExecutionTimeout
        | pymongo.errors.WTimeoutError
        | pymongo.errors.WriteConcernError,
    ):
        return Verdict.TRANSIENT
    if isinstance(exc, pymongo.errors.DocumentTooLarge):
        return Verdict.RECORD
    if isinstance(exc, pymongo.errors.BulkWriteError):
        details = exc.details or {}
        if details.get("writeConcernErrors"):
            return Verdict.TRANSIENT
        verdicts = {mongo_code(e.get("code")) for e in details.get("writeErrors", [])}
        if not verdicts or Verdict.TRANSIENT in verdicts:  # no per-document reason: the server
            return Verdict.TRANSIENT
        return Verdict.UNEXPLAINED if Verdict.UNEXPLAINED in verdicts else Verdict.RECORD
    if isinstance(exc, pymongo.errors.OperationFailure):
        if exc.has_error_label("RetryableWriteError"):
            return Verdict.TRANSIENT
        return mongo_code(exc.code)
    return Verdict.UNEXPLAINED


def mongo_code(code: int | None) -> Verdict:
    """What a MongoDB error code means (also for the per-document errors of a bulk write)."""
    if code in _MONGO_TRANSIENT:
        return Verdict.TRANSIENT
    if code in _MONGO_RECORD:
        return Verdict.RECORD
    return Verdict.UNEXPLAINED


def _redis(exc: redis.RedisError) -> Verdict:
    import redis

    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
        return Verdict.TRANSIENT
    message = str(exc)
    if message.startswith(_REDIS_TRANSIENT):
        return Verdict.TRANSIENT
    if message.startswith("WRONGTYPE"):
        return Verdict.RECORD  # a key of this record holds another type of value
    return Verdict.UNEXPLAINED


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
