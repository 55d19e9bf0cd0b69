"""How long Kafka holds the bridge's fetches: for company while records flow, not at all when idle.

Kafka answers a fetch with its first record by default, so at a steady load the bridge makes a
task per record or two, each costing far more than its record (docs/performance.md). A fetch
Kafka holds for BRIDGE_BATCH_MIN_WAIT_MS (or until 1 MiB arrived) brings what arrived meanwhile.
Held always, an idle bridge would fetch 1000/wait times a second for nothing (~15% of a core for
the bridge and as much for Kafka at 25 ms). So the wait is on only while records flow: after a
poll that brought records, and off after one that brought none, when Kafka holds a fetch until
the first record arrives, as by default. Below a record per wait the two alternate: a record
after a pause goes out at once, and the fetch after it lingers once.

kafka-python reads its fetch settings from its fetcher's config each time it builds a fetch (a
private attribute, checked by tests/integration/test_fetch_wait.py); without it, nothing lingers.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

LINGER_MIN_BYTES = 1024 * 1024  # below any batch: Kafka answers at the wait unless a backlog


class FetchWait:
    def __init__(self, consumer: Any, wait_ms: int):
        self.wait_ms = wait_ms
        self.lingering = False
        self.config: dict[str, Any] | None = None
        self.idle: dict[str, Any] = {}
        if not wait_ms:
            return
        config = getattr(getattr(consumer, "_fetcher", None), "config", None)
        if not isinstance(config, dict):
            log.warning("this kafka-python cannot hold fetches: BRIDGE_BATCH_MIN_WAIT_MS ignored")
            return
        self.config = config
        self.idle = {k: config[k] for k in ("fetch_min_bytes", "fetch_max_wait_ms")}

    def polled(self, records: int) -> None:
        """After each poll: the next fetches linger while records flow, and answer at the first
        record once a poll brought none."""
        flowing = records > 0
        if self.config is None or flowing == self.lingering:
            return
        if flowing:
            self.config.update(fetch_min_bytes=LINGER_MIN_BYTES, fetch_max_wait_ms=self.wait_ms)
        else:
            self.config.update(self.idle)
        self.lingering = flowing

    def poll_timeout_ms(self, timeout_ms: int) -> int:
        """While lingering, a poll returns soon after a held fetch came back empty (kafka-python
        would otherwise fetch again, lingering, until the poll's own timeout)."""
        return min(timeout_ms, 2 * self.wait_ms) if self.lingering else timeout_ms
