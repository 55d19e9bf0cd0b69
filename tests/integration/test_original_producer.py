"""The original system's producers keep working (docs/contracts.md, "Messages").

A producer exactly like the original one (tests/integration/original_producer.py: no key, a JSON
`value_serializer`, fire-and-forget sends, Faker e-mails, books as Google Books gives them,
float `time.time()` timestamps) runs against the pipeline on a deployment of its own (its own
topics, emptied first, and stores): every record it sent is stored, nothing is dead-lettered,
and `check` and `verify` are clean. Records without a key spread over the partitions, so two
versions of one entity can sit in different partitions: the later timestamp wins.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaProducer

from bookstore.entities import topics
from bookstore.namespace import Namespace
from tests.integration.google_books_fake import Reply, google, page, volume  # noqa: F401
from tests.integration.pipeline import Pipeline, Stores, recreate_topics
from tests.support import TABLE, Processes, run, wait_drained, wait_until

PREFIX = "test.original."
NS = Namespace("bookstore_original", {"redis_db": 3})
ROUNDS = 150

# Volumes as Google Books gives them: with and without authors, ISBN-13, ISBN-10 only or none,
# dates of every precision or none, extra fields the mapping ignores.
VOLUMES = [
    volume("zyTCAlFPjgYC", "The Google story", ["David A. Vise", "Mark Malseed"],
           [("ISBN_10", "055380457X"), ("ISBN_13", "9780553804577")], "2005-11-15"),
    volume("Wq6lDwAAQBAJ", "Python Crash Course", ["Eric Matthes"],
           [("ISBN_13", "9781593279288")], "2019-05"),
    volume("ohlNAQAAMAAJ", "Dom Casmurro", ["Machado de Assis"], [("ISBN_10", "8508041061")],
           "1899"),
    volume("qWQ-AAAAYAAJ", "Relatório anual", None, [("OTHER", "HARVARD:32044")], None),
    volume("kXv0AwAAQBAJ", "Sem autor: “aspas”, ção e 🚀", [], None, "2014-06-12T00:00:00Z"),
    volume("b9X9AAAAMAAJ", "A" * 900, ["Autora Muito Longa " * 20], None, "2004"),
]  # fmt: skip


@dataclass
class Deployment:
    pipeline: Pipeline
    stores: Stores


@pytest.fixture(scope="module")
def deployment(settings, tmp_path_factory) -> Iterator[Deployment]:
    recreate_topics(settings.replace(kafka_topic_prefix=PREFIX))
    NS.reset(settings)
    tmp = tmp_path_factory.mktemp("original")
    processes = Processes(tmp)
    pipeline = Pipeline(processes, settings, tmp, KAFKA_TOPIC_PREFIX=PREFIX, **NS.env(settings))
    stores = Stores(NS.settings(settings))
    try:
        pipeline.start_workers()
        pipeline.start_bridge()
        pipeline.wait_assigned()
        yield Deployment(pipeline, stores)
    finally:
        processes.stop_all()
        stores.close()


def settle(pipeline: Pipeline) -> None:
    """Until the bridge committed every record and every task ran."""
    wait_until(lambda: pipeline.lag() == 0, 120, "the bridge group's lag to be 0")
    wait_drained(TABLE.bridge_queues)


def test_every_record_of_the_original_producer_is_stored(deployment, google):  # noqa: F811
    google.reply(Reply(body=page(VOLUMES)))
    env = {**deployment.pipeline.env, "GOOGLE_BOOKS_BASE_URL": google.base_url}
    result = run("-m", "tests.integration.original_producer", str(ROUNDS), "7", env=env)
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout)
    emails = [email.lower() for _, email in sent["customers"]]
    assert len(set(emails)) == ROUNDS, "the seed must give distinct e-mails (check is clean)"

    customers = [cid for cid, _ in sent["customers"]]
    stores = deployment.stores
    wait_until(
        lambda: (
            len(stores.customers(customers)) == ROUNDS
            and len(stores.books(set(sent["books"]))) == len(set(sent["books"]))
            and len(stores.orders(sent["orders"])) == ROUNDS
        ),
        180,
        "every customer, book and order the original producer sent, stored",
    )
    settle(deployment.pipeline)
    orders = stores.orders(sent["orders"])
    assert {o["customer_id"] for o in orders.values()} == set(customers)
    assert all(o["timestamp"].endswith("Z") for o in orders.values())  # float epochs, as ISO
    stats = json.loads(deployment.pipeline.cli("stats", "--json").stdout)
    assert stats["dead_letters"] == 0, stats
    assert deployment.pipeline.check()["ok"] is True
    verify = deployment.pipeline.cli("verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_two_versions_in_two_partitions_the_later_timestamp_wins(deployment, settings):
    """Sent without a key, the versions of one customer land in any partition and may be
    stored in any order: the later record (timestamp, then partition, offset) wins."""
    names = topics(settings.replace(kafka_topic_prefix=PREFIX))
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
    )
    cid = str(uuid.uuid4())
    older = {"id": cid, "name": "Primeira", "email": f"{cid}@example.com"}
    newer = {**older, "name": "Segunda", "email": f"new-{cid}@exemplo.com.br"}
    now = int(time.time() * 1000)
    producer.send(names.of("customers"), newer, partition=1, timestamp_ms=now)
    producer.flush()
    stores = deployment.stores
    wait_until(lambda: stores.customers([cid]), 60, "the newer version stored")
    producer.send(names.of("customers"), older, partition=0, timestamp_ms=now - 60_000)
    producer.flush()
    producer.close()
    settle(deployment.pipeline)
    assert stores.customers([cid]) == {cid: newer}
    verify = deployment.pipeline.cli("verify", "--json", "--store", "postgres")
    assert verify.returncode == 0, verify.stdout + verify.stderr
