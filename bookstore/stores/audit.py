"""The audit log: every raw record as one JSON line (docs/contracts.md), durable before the ack.

Several audit workers may append to one file: each batch is written with a single write() on an
O_APPEND descriptor under an exclusive flock, so lines never interleave, then fsynced.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bookstore.errors import StoreUnavailable
from bookstore.records import Record, audit_line


class AuditLog:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def append(self, lines: str | list[dict[str, Any]]) -> int:
        """Append a batch (its lines as the bridge encoded them, or wire dicts); returns how
        many records it held."""
        if isinstance(lines, list):
            lines = "".join(map(audit_line, map(Record.from_wire, lines)))
        data = lines.encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open audit log {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:  # a single write() normally; loop only on a short write
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:  # disk full, I/O error: retry later, never drop
            raise StoreUnavailable(f"cannot write audit log {self.path}: {exc}") from exc
        finally:
            os.close(fd)  # releases the lock
        return lines.count("\n")

    def lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
