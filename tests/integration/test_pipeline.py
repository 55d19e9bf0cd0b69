"""The pipeline end to end over real servers and real processes: Kafka -> bridge -> RabbitMQ ->
workers -> PostgreSQL / MongoDB / Redis / audit log; a worker killed mid-batch and a rebalance.
Server and process faults mid-stream are the fault suite's (test_faults.py)."""

from __future__ import annotations

import json
import signal

import psycopg2
import pytest

from bookstore.namespace import Namespace
from bookstore.stores.postgres import SCHEMA
from tests.integration.pipeline import (
    Pipeline,
    Stores,
    assert_stored_exactly,
    build_dataset,
    dead_letters,
    produce,
)
from tests.support import TABLE, TOPICS, Processes, wait_drained, wait_until


@pytest.fixture
def stores(settings):
    s = Stores(settings)
    yield s
    s.close()


def test_end_to_end_valid_stored_once_malformed_dead_lettered_all_audited(
    processes, settings, tmp_path, stores
):
    ds = build_dataset(700, 600, 700)
    pipeline = Pipeline(processes, settings, tmp_path)
    pipeline.start_workers()
    pipeline.start_bridge()

    coords = produce(settings, ds.messages)
    wait_until(lambda: stores.complete(ds), 240, "every valid record in the stores")
    coords |= produce(settings, ds.bad_messages)
    assert len(coords) >= 2000
    pipeline.wait_audited(coords)

    assert_stored_exactly(stores, ds)
    letters = dead_letters(settings, set(ds.malformed))
    assert set(letters) == set(ds.malformed)
    for raw, stage in ds.malformed.items():
        headers = letters[raw]
        assert headers["error.stage"] == stage, (raw, headers)
        assert headers["error.reason"]
        assert headers["origin.topic"] in TOPICS.entities
        origin = (
            headers["origin.topic"],
            int(headers["origin.partition"]),
            int(headers["origin.offset"]),
        )
        assert origin in coords
    audit = pipeline.audit_coords()
    mine = [c for c in audit if c in coords]
    assert len(mine) == len(set(mine)) == len(coords)  # one line per record (no crash here)
    lines = [json.loads(line) for line in pipeline.audit_path.read_text().splitlines()]
    non_utf8 = [line for line in lines if line.get("value_b64")]
    assert non_utf8 and all(line["value"] is None for line in non_utf8)

    # the same messages again change nothing in the stores
    before = stores.snapshot(ds)
    again = produce(settings, ds.messages)
    pipeline.wait_audited(again)
    wait_drained(TABLE.bridge_queues)  # the store tasks that ran alongside the audit
    assert stores.snapshot(ds) == before


KILL_NS = Namespace("bookstore_kill", {"redis_db": 7})


def test_worker_killed_mid_batch_has_its_batch_redelivered(processes, settings, tmp_path):
    KILL_NS.reset(settings)
    mine = KILL_NS.settings(settings)
    # A slow PostgreSQL (a trigger sleeps 40 ms per row): each batch of 25 customers is in
    # progress for about a second, so the kill lands inside one.
    with psycopg2.connect(mine.store("postgres").dsn) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute(
            """CREATE OR REPLACE FUNCTION slow() RETURNS trigger AS $$
               BEGIN PERFORM pg_sleep(0.04); RETURN NEW; END $$ LANGUAGE plpgsql;
               CREATE OR REPLACE TRIGGER slow BEFORE INSERT OR UPDATE ON customers
                 FOR EACH ROW EXECUTE FUNCTION slow();"""
        )
    conn.close()
    ds = build_dataset(200, 20, 20)
    env = {**KILL_NS.env(settings), "BRIDGE_BATCH_SIZE": "25"}
    pipeline = Pipeline(processes, settings, tmp_path, **env)
    pipeline.start_workers()
    pipeline.start_bridge()
    produce(settings, ds.messages)
    stores = Stores(mine)
    try:

        def mid_batch() -> bool:
            with stores.pg.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
                    " AND pid <> pg_backend_pid() AND query LIKE '%%INSERT INTO customers%%'",
                    (KILL_NS.name,),
                )
                writing = cur.fetchone()[0]
            return writing > 0 and 0 < len(stores.customers(ds.customers)) < len(ds.customers)

        wait_until(mid_batch, 120, "the postgres worker to be inside a batch, part-way through")
        Processes.stop(pipeline.workers["postgres"], signal.SIGKILL)  # the worker and its pool
        assert len(stores.customers(ds.customers)) < len(ds.customers)

        processes.worker("postgres", env=pipeline.env)
        wait_until(lambda: stores.complete(ds), 240, "every customer after the restart")
        assert_stored_exactly(stores, ds)
    finally:
        with stores.pg.cursor() as cur:  # the namespace outlives the test: its next run is fast
            cur.execute("DROP TRIGGER IF EXISTS slow ON customers")
        stores.close()


def test_two_bridges_share_the_partitions_and_lose_nothing_across_the_rebalance(
    processes, settings, tmp_path, stores
):
    ds = build_dataset(300, 300, 900)
    pipeline = Pipeline(processes, settings, tmp_path, BRIDGE_BATCH_SIZE="50")
    pipeline.start_workers()
    first = pipeline.start_bridge()
    coords = produce(settings, ds.messages)
    wait_until(lambda: len(pipeline.audit_coords()) >= 200, 120, "the first bridge to be busy")
    second = processes.start("bridge-2", "-m", "bridge", env=pipeline.env)  # rebalance mid-stream
    pipeline.wait_audited(coords)
    wait_until(lambda: stores.complete(ds), 240, "every valid record in the stores")
    assert_stored_exactly(stores, ds)
    pipeline.wait_assigned(members=2)  # the second bridge took a share
    assert first.poll() is None and second.poll() is None
