"""Queue depths from RabbitMQ (passive queue.declare), checked at most once a second."""

from __future__ import annotations

import logging
import time

from celery import Celery

from bookstore.topics import AUDIT_QUEUE, STORE_QUEUE

log = logging.getLogger("bridge")

WATCHED = (*STORE_QUEUE.values(), AUDIT_QUEUE)


class QueueDepths:
    def __init__(self, app: Celery, max_depth: int, every: float = 1.0):
        self.app = app
        self.max_depth = max_depth
        self.every = every
        self._checked_at = 0.0
        self._conn = None

    def depths(self) -> dict[str, int]:
        if self._conn is None:
            self._conn = self.app.connection_for_read()
        channel = self._conn.default_channel
        return {q: channel.queue_declare(q, passive=True).message_count for q in WATCHED}

    def check(self) -> tuple[set[str], set[str]] | None:
        """(queues deeper than the bound, queues drained below half of it), or None if not due."""
        now = time.monotonic()
        if self.max_depth <= 0 or now - self._checked_at < self.every:
            return None
        self._checked_at = now
        try:
            depths = self.depths()
        except Exception as exc:  # queue not declared yet, broker away: no verdict this time
            log.debug("queue depth check failed: %s", exc)
            self.close()
            return None
        too_deep = {q for q, n in depths.items() if n > self.max_depth}
        drained = {q for q, n in depths.items() if n <= self.max_depth // 2}
        return too_deep, drained

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.release()
            finally:
                self._conn = None
