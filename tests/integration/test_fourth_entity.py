"""An entity added through the entity table alone flows end to end (README, "Add an entity").

The fourth entity (fourth_entity/reviews.py: a topic, a schema, a queue, a tiny SQLite store) is
installed for the processes this test starts by an entry point in the group `bookstore.entities`,
as a package of its own would declare it. Nothing else is touched: the
worker's task and queue, the bridge's subscription and routing, the topic's creation, validation,
dead letters, the audit log, `stats`, `rebuild --into` and `verify --namespace` all come from the
table and the store's own module (its settings under REVIEWS_, its namespace, its errors)."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

from kafka import KafkaAdminClient

from tests.integration.fourth_entity.reviews import QUEUE, REVIEWS, ReviewSettings
from tests.integration.pipeline import Pipeline, dead_letters_of, produce_each
from tests.integration.store_contract import StoreContract
from tests.support import REPO, TOPICS, wait_until


def install(site: str) -> None:
    """What `pip install` of a package declaring the row leaves on sys.path."""
    info = f"{site}/fourth_entity-0.dist-info"
    os.makedirs(info)
    with open(f"{info}/METADATA", "w") as f:
        f.write("Metadata-Version: 2.1\nName: fourth-entity\nVersion: 0\n")
    with open(f"{info}/entry_points.txt", "w") as f:
        f.write("[bookstore.entities]\nreviews = tests.integration.fourth_entity.reviews:REVIEWS\n")


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


def test_a_fourth_entity_defined_by_a_table_row_flows_end_to_end(processes, settings, tmp_path):
    name = f"reviews-{uuid.uuid4().hex[:8]}"
    topic = TOPICS.of(name)
    site, db = tmp_path / "site", tmp_path / "reviews.sqlite"
    install(str(site))
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


class TestReviewStore(StoreContract):
    """Its store, held to the contract every store is."""

    entity = REVIEWS
    unreachable = {"db": "/nonexistent/reviews.sqlite"}

    @staticmethod
    def sample(key: str, n: int) -> dict:
        return {"id": key, "book_id": f"vol{n}", "stars": 1 + n % 5}

    def own_settings(self, mine, tmp_path) -> ReviewSettings:
        return ReviewSettings(db=str(tmp_path / "reviews.sqlite"))
