"""The bridge's fetches wait for company while records flow, not when idle (bridge/fetch_wait.py),
against a real Kafka: kafka-python builds each fetch from its fetcher's config, which FetchWait
changes between polls."""

from __future__ import annotations

import time

from kafka import KafkaConsumer

from bookstore.kafka import client_options, offsets
from bookstore.topic_config import ensure_topics
from bridge.fetch_wait import FetchWait
from tests.integration.pipeline import Stream, build_dataset
from tests.support import ORDERS


def test_fetches_wait_while_records_flow_and_answer_at_once_when_idle(settings):
    ensure_topics(settings)
    consumer = KafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    try:
        _, ends = offsets(settings, [ORDERS])
        consumer.assign(list(ends))
        for tp, end in ends.items():  # from before the first record is sent
            consumer.seek(tp, end)
        wait = FetchWait(consumer, 300)
        idle = dict(wait.idle)
        orders = [m for m in build_dataset(2, 2, 30).messages if m[0] == ORDERS]
        stream = Stream(settings, orders, per_second=10).start()  # a record every 100 ms

        def poll() -> int:
            polled = consumer.poll(timeout_ms=wait.poll_timeout_ms(500))
            count = sum(len(records) for records in polled.values())
            wait.polled(count)
            return count

        sizes: list[int] = []
        deadline = time.monotonic() + 60
        while sum(sizes) < len(orders) and time.monotonic() < deadline:
            if count := poll():
                sizes.append(count)
        stream.finish(timeout=60)
        assert sum(sizes) == len(orders)
        # answered at the first record, each poll would bring one; held 300 ms, about three
        assert len(sizes) <= len(orders) / 2, sizes

        while poll():  # the flow stopped: a poll comes back empty
            pass
        assert not wait.lingering
        assert {k: consumer._fetcher.config[k] for k in idle} == idle  # Kafka's defaults again
    finally:
        consumer.close()
