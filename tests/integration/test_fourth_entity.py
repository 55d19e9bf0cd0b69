"""An entity added by a package of its own flows end to end (docs/extending.md).

The example package (examples/reviews: a topic, a schema, a queue, a tiny SQLite store, and one
entry point in the group `bookstore.entities`) is installed with pip, as a user installs theirs,
for the processes this test starts. Nothing else is touched: the worker's task and queue, the
bridge's subscription and routing, the topic's creation, validation, dead letters, the audit
log, `stats`, `rebuild --into` and `verify --namespace` all come from the table and the store's
own module (its settings under REVIEWS_, its namespace, its errors); and the store contract
suite and a benchmark smoke run take the new row as they take the built-in ones, with no edit.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from tests.integration.pipeline import Pipeline, dead_letters_of, produce_each
from tests.support import REPO, TOPICS, run, wait_until

QUEUE = "reviews"  # the example's queue (examples/reviews/livros_reviews.py)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package installed (with pip, from its pyproject.toml) into a directory of
    its own, which the processes of this module find on their PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    source = shutil.copytree(REPO / "examples/reviews", tmp_path_factory.mktemp("src") / "reviews")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--no-build-isolation", "--target", str(target), str(source)),
        ],
        check=True,
        capture_output=True,
    )
    return target


def topic_exists(settings, topic: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        return topic in admin.list_topics()
    finally:
        admin.close()


def stored(path) -> dict[str, tuple[str, int]]:
    try:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT id, book_id, stars FROM reviews").fetchall()
    except sqlite3.OperationalError:  # the worker creates the table with its first write
        return {}
    return {i: (b, s) for i, b, s in rows}


def test_a_fourth_entity_defined_by_a_table_row_flows_end_to_end(
    processes, settings, tmp_path, site
):
    name = f"reviews-{uuid.uuid4().hex[:8]}"
    topic = TOPICS.of(name)
    db = tmp_path / "reviews.sqlite"
    pipeline = Pipeline(
        processes,
        settings,
        tmp_path,
        PYTHONPATH=f"{site}:{REPO}",
        REVIEWS_NAME=name,
        REVIEWS_DB=str(db),
    )
    pipeline.start_workers(QUEUE, "audit")
    pipeline.start_bridge()  # creates the topic, as it does the three others
    wait_until(lambda: topic_exists(settings, topic), 120, f"the bridge to create {topic}")

    reviews = {f"r{i}": {"id": f"r{i}", "book_id": f"vol{i}", "stars": 1 + i % 5} for i in range(5)}
    valid = [(topic, r["id"].encode(), json.dumps(r).encode()) for r in reviews.values()]
    bad = [
        (topic, b"r-bad", json.dumps({"id": "r-bad", "book_id": "v", "stars": 9}).encode()),
        (topic, b"r-junk", b"{not json"),
    ]
    coords = produce_each(settings, [*valid, valid[0], *bad])  # one duplicate

    wait_until(lambda: len(stored(db)) == len(reviews), 180, "the reviews in their store")
    assert stored(db) == {r["id"]: (r["book_id"], r["stars"]) for r in reviews.values()}
    letters = dead_letters_of(settings, coords[-2:])
    assert {c: h["error.stage"] for c, [(_, _, h)] in letters.items()} == {
        coords[-2]: "validate",
        coords[-1]: "decode",
    }
    assert "stars" in letters[coords[-2]][0][2]["error.reason"]
    pipeline.wait_audited(coords)

    stats = pipeline.cli("stats", "--json")
    assert json.loads(stats.stdout)[name] == len(reviews), stats.stdout + stats.stderr

    # Its store names a namespace (a file beside the live one, from its own settings): the log
    # rebuilds into it and `verify` compares it, and the live file is never touched.
    live_bytes = db.read_bytes()
    there = tmp_path / "reviews.reviews_ns.sqlite"
    rebuilt = pipeline.cli("rebuild", "--into", "reviews_ns", "--store", QUEUE)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert stored(there) == stored(db) and db.read_bytes() == live_bytes
    checked = pipeline.cli("verify", "--namespace", "reviews_ns", "--store", QUEUE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with sqlite3.connect(there) as tampered:
        tampered.execute("UPDATE reviews SET stars = 6 - stars WHERE id = 'r1'")
    tampered.close()
    checked = pipeline.cli("verify", "--namespace", "reviews_ns", "--store", QUEUE, "--json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["differences"] == 1
    assert db.read_bytes() == live_bytes


def test_the_store_contract_and_a_benchmark_take_the_new_row(site, tmp_path):
    """The contract suite runs against the example's store, and a benchmark's smoke run sends
    its records through the pipeline and the direct sink, by the table alone."""
    env = {"PYTHONPATH": f"{site}:{REPO}", "REVIEWS_DB": str(tmp_path / "reviews.sqlite")}
    contract = run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/integration/test_store_contract.py",
        "-k",
        QUEUE,
        env=env,
    )
    assert contract.returncode == 0, contract.stdout[-3000:] + contract.stderr[-2000:]
    assert "6 passed" in contract.stdout, contract.stdout[-2000:]
    bench = run("-m", "bench.pipeline", *SMOKE, env={**env, "KAFKA_TOPIC_PREFIX": "bench."})
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert "reviews" in bench.stdout, bench.stdout


SMOKE = ("--records", "120", "--repeat", "1", "--peers", "direct,pipeline", "--latency", "")
