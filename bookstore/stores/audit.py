"""The audit log: every raw record as one JSON line (docs/contracts.md), durable before the ack.

A store like the others (`rebuild`, `verify`, namespaces), but of every record of every entity
topic as received, good or bad, never judged (its StoreSpec says `every_record`).

Several audit workers may append to one file: each batch is written with a single write() on an
O_APPEND descriptor under an exclusive flock, so lines never interleave, then fsynced.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bookstore.errors import StoreUnavailable, Verdict
from bookstore.namespace import Namespace, beside
from bookstore.records import Record, audit_line
from bookstore.stores import Closing, StoreSettings


class AuditSettings(StoreSettings, env_prefix="AUDIT_"):
    # AUDIT_LOG_PATH: one file, appended to by every audit worker
    log_path: str = "messages.log"

    @classmethod
    def unreachable(cls) -> AuditSettings:
        return cls(log_path="/nonexistent/messages.log")


class AuditStore(Closing):
    server = "the audit log"
    configured_by = "AUDIT_LOG_PATH"
    settings_class = AuditSettings

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @classmethod
    def from_settings(cls, own: AuditSettings) -> AuditStore:
        return cls(own.log_path)

    @classmethod
    def in_namespace(cls, own: AuditSettings, namespace: Namespace) -> AuditSettings:
        """`messages.NAME.log` beside the live log."""
        return own.replace(log_path=beside(own.log_path, namespace.name))

    @classmethod
    def create_namespace(cls, live: AuditSettings, name: str) -> None:
        """Nothing: the file is created by its first write."""

    @staticmethod
    def classify(exc: BaseException) -> Verdict | None:
        """Its failures are raised as StoreUnavailable already (a full disk, an I/O error)."""
        return None

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

    def write(self, batch: list[tuple[Any, Record]]) -> list[tuple[Record, str]]:
        """The records as received (the first of each pair is not used: nothing is judged)."""
        self.append("".join(audit_line(record) for _, record in batch))
        return []

    def lines(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def count(self) -> int:
        return sum(1 for _ in self.lines())

    def clear(self) -> None:
        """Start an empty log. The one there is moved aside (`.before-rebuild-<time>`), never
        deleted: it may hold records the topics no longer do (compacted away, past their
        retention)."""
        if self.path.exists() and self.path.stat().st_size:
            self.path.rename(
                self.path.with_name(f"{self.path.name}.before-rebuild-{time.time():.0f}")
            )
        self._progress.unlink(missing_ok=True)

    @property
    def _progress(self) -> Path:
        """How far a rebuild of this log has read: a file beside it, replaced whole, naming the
        log it speaks for (its inode, and its size then): a log removed, replaced or cut shorter
        since is not the one it speaks for, and a rebuild of it starts from the first offset."""
        return self.path.with_name(f"{self.path.name}.progress")

    def progress(self) -> dict[str, int]:
        try:
            kept = json.loads(self._progress.read_text())
            log = self.path.stat()
        except FileNotFoundError:
            return {}
        if kept["inode"] != log.st_ino or log.st_size < kept["size"]:
            return {}
        return kept["offsets"]

    def keep_progress(self, offsets: dict[str, int]) -> None:
        log = self.path.stat() if self.path.exists() else None
        kept = {
            "inode": log.st_ino if log else None,
            "size": log.st_size if log else 0,
            "offsets": offsets,
        }
        partial = self._progress.with_name(self._progress.name + ".partial")
        partial.write_text(json.dumps(kept))
        partial.replace(self._progress)

    def entries(self) -> Iterator[Record]:
        """Every line, as the record it holds (duplicates included: at least once)."""
        for wire in self.lines():
            yield Record.from_wire(wire)

    def close(self) -> None:
        """Nothing held open between writes."""
