"""Per-queue backpressure: hold back a queue's tasks while RabbitMQ holds too many of them.

Depths come from RabbitMQ (passive queue.declare) at most once a second; between two readings
each publish adds one to the estimate, so a fast bridge cannot overshoot the bound by a second's
worth of tasks. A queue is held above the bound and released once it drained to half of it.
"""

from __future__ import annotations

import logging
import time

from bookstore.broker import connect
from bookstore.config import Settings
from bookstore.entities import AUDIT_QUEUE, EntityTable
from bridge import metrics

log = logging.getLogger(__name__)


class Holds:
    """The policy, without RabbitMQ: a queue is held once its depth exceeds `max_depth` and
    released once it drained to half of it; each publish counts one more between readings. It
    watches the queues the bridge publishes to, for the entities of `table`."""

    def __init__(self, max_depth: int, table: EntityTable):
        self.max_depth = max_depth
        self.store_queue = {e.name: e.queue for e in table}
        self.estimate = dict.fromkeys(table.bridge_queues, 0)
        self.held: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.max_depth > 0

    def holds(self, entity: str) -> bool:
        """Whether records of `entity` must wait: its store's queue or the audit queue is full."""
        return bool(self.held & {self.store_queue[entity], AUDIT_QUEUE})

    def published(self, queue: str) -> None:
        self.estimate[queue] += 1
        if self.enabled and self.estimate[queue] > self.max_depth and queue not in self.held:
            self.held.add(queue)
            log.warning("queue %s is deep; pausing the partitions that feed it", queue)

    def observed(self, depths: dict[str, int]) -> None:
        """Depths as RabbitMQ reports them."""
        self.estimate.update(depths)
        for queue, depth in self.estimate.items():
            if depth > self.max_depth and queue not in self.held:
                self.held.add(queue)
                log.warning("queue %s is deep; pausing the partitions that feed it", queue)
            elif depth <= self.max_depth // 2 and queue in self.held:
                self.held.discard(queue)
                log.info("queue %s drained; resuming", queue)


class QueueDepths(Holds):
    """Holds fed by RabbitMQ's queue depths (passive queue.declare), read at most every second."""

    def __init__(self, settings: Settings, every: float = 1.0):
        super().__init__(settings.bridge_max_queue_depth, settings.entities)
        self.settings = settings
        self.every = every
        self._read_at = 0.0
        self._conn = None

    def refresh(self) -> None:
        now = time.monotonic()
        every = self.every / 5 if self.held else self.every  # release held queues promptly
        if not self.enabled or now - self._read_at < every:
            return
        self._read_at = now
        try:
            depths = self._read()
        except Exception as exc:  # broker away: keep the estimates until the next reading
            log.debug("queue depth check failed: %s", exc)
            self._next_node()
            return
        for queue, depth in depths.items():
            metrics.QUEUE_DEPTH.labels(queue).set(depth)
        self.observed(depths)

    def _read(self) -> dict[str, int]:
        if self._conn is None:
            self._conn = connect(self.settings)
        channel = self._conn.default_channel
        return {q: channel.queue_declare(q, passive=True).message_count for q in self.estimate}

    def _next_node(self) -> None:
        """Forget the connection that failed, without the closing handshake a node that stopped
        answering would never complete, and read from the next node of CELERY_BROKER_URL next
        time (a new connection would start from the first one again, however long it is away)."""
        if self._conn is not None:
            self._conn.collect()
            self._conn.maybe_switch_next()
