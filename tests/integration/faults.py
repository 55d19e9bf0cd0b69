"""What the fault suites share (tests/integration/test_faults.py on the single stack,
tests/cluster/test_cluster.py on the three-node one): a pipeline on stores of its own and a
mixed stream through it, faults injected while it flows, and the exact end state.

A stream mixes valid records (with duplicates) and a record of every class of the bad-input
table (docs/contracts.md), sent at a steady pace. At the end, exactly: every valid record stored
once with its content, every bad one dead-lettered with its stage, no valid one dead-lettered,
every record audited, lag 0, nothing parked, `check` exit 0, `verify` equal to the log.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bookstore.namespace import Namespace
from tests import poison
from tests.integration.pipeline import (
    Coord,
    Dataset,
    Pipeline,
    Stores,
    Stream,
    assert_stored_exactly,
    build_dataset,
    dead_letters_of,
    end_offsets,
    produce_each,
    recreate_topics,
)
from tests.support import CUSTOMERS, DEAD_LETTERS, TABLE, Processes, wait_drained, wait_until


@dataclass
class Run:
    """One mixed stream through one pipeline, and what it must end as."""

    pipeline: Pipeline
    settings: object  # the namespace's Settings
    ds: Dataset
    bad: dict[bytes | None, poison.Bad]  # by value (every sample's bytes are unique)
    stream: Stream
    dead_letters_since: dict[int, int]
    extra: list[Coord] = field(default_factory=list)
    stalls: dict[str, float] = field(default_factory=dict)  # fault -> seconds

    def progressed(self, fraction: float) -> None:
        """Wait until this share of the stream is audited (and so mid-stream)."""
        wanted = int(len(self.stream.messages) * fraction)
        wait_until(
            lambda: len(self.pipeline.audit_coords()) >= wanted,
            300,
            f"{fraction:.0%} of the stream through the pipeline",
        )
        assert not self.stream.done, "the stream ended before the fault: make it slower"

    def resumed_within(self, since: float, fault: str) -> float:
        """Send a valid customer to every partition now; how long after `since` the last of them
        reached the audit log: produced, consumed, published and stored, end to end."""
        coords = []
        for partition in range(self.settings.kafka_partitions):
            marker = poison.customer("marker")
            self.ds.customers[marker["id"]] = marker
            value = json.dumps(marker).encode()
            coords += produce_each(self.settings, [(CUSTOMERS, None, value)], partition)
        self.extra += coords
        self.pipeline.wait_audited(coords, timeout=300)
        took = time.monotonic() - since
        self.stalls[fault] = took
        print(f"{fault}: records flowed end to end again {took:.1f}s after it")
        return took

    def assert_nothing_lost(self) -> None:
        streamed = self.stream.finish()
        coords = streamed + self.extra
        self.pipeline.wait_audited(coords, timeout=300)
        stores = Stores(self.settings)  # fresh connections: the servers may have restarted
        try:
            try:
                wait_until(lambda: stores.complete(self.ds), 300, "every valid record in its store")
            except pytest.fail.Exception:
                missing = {k: (len(v), v[:5]) for k, v in stores.missing(self.ds).items() if v}
                pytest.fail(f"valid records missing from their stores after 300s: {missing}")
            assert_stored_exactly(stores, self.ds)
        finally:
            stores.close()
        by_coord = dict(zip(streamed, [v for _, _, v in self.stream.messages], strict=True))
        bad_coords = {c for c, value in by_coord.items() if value in self.bad}
        assert len(bad_coords) == len(self.bad)
        letters = dead_letters_of(
            self.settings, coords, until=bad_coords, since=self.dead_letters_since
        )
        assert set(letters) == bad_coords, "a valid record was dead-lettered, or a bad one not"
        for coord in bad_coords:
            stages = {headers["error.stage"] for _, _, headers in letters[coord]}
            assert stages == {self.bad[by_coord[coord]].stage}, (coord, stages)
        wait_until(lambda: self.pipeline.lag() == 0, 120, "the bridge group's lag to be 0")
        wait_drained(TABLE.bridge_queues, timeout=300)
        assert self.pipeline.parked() == []
        self.pipeline.check()
        verify = self.pipeline.cli("verify", "--json")
        assert verify.returncode == 0, verify.stdout + verify.stderr


def mixed_run(
    processes: Processes,
    settings,
    tmp_path: Path,
    ns: Namespace,
    size: tuple[int, int, int],
    per_second: int,
    **env: str,
) -> Run:
    """A pipeline (workers and a bridge, started) on the stores of `ns`, emptied, and on the
    suite's topics, emptied (`verify` compares the stores with the whole log), and a mixed stream
    of `size` (customers, books, orders) ready to start at `per_second`."""
    recreate_topics(settings)
    ns.reset(settings)
    pipeline = Pipeline(processes, settings, tmp_path, **ns.env(settings), **env)
    tag = uuid.uuid4().hex[:8]
    ds = build_dataset(*size, tag)
    customer_id, book_id = next(iter(ds.customers)), next(iter(ds.books))
    bad = {
        b.value: b
        for samples in poison.classes(tag, customer_id, book_id).values()
        for b in samples
        if b.value is not None  # a tombstone has no bytes to tell it by
    }
    messages = [(t, k, v) for t, k, v in ds.messages]
    messages += [(b.topic, b.key, b.value) for b in bad.values()]
    random.Random(tag).shuffle(messages)
    stream = Stream(settings, messages, per_second=per_second)
    since = end_offsets(settings, DEAD_LETTERS)
    pipeline.start_workers()
    pipeline.start_bridge()
    pipeline.wait_assigned()
    return Run(pipeline, ns.settings(settings), ds, bad, stream, since)
