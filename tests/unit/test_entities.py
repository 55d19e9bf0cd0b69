"""The entity table and what derives from it, without a server."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from bookstore.config import load_settings
from bookstore.entities import (
    BUILT_IN,
    DEAD_LETTERS,
    Entity,
    EntityTable,
    TableError,
    load_table,
    open_stores,
    topics,
)
from bookstore.topic_config import topic_configs
from tests.support import REPO

ENTITIES = BUILT_IN
# a row no installed package declares here: passed in, not discovered (the example package's
# module, examples/reviews, found on sys.path by the `example` fixture)
REVIEWS = Entity("reviews", "reviews", "livros_reviews:ReviewStore", "livros_reviews:Review")


@pytest.fixture
def example(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(REPO / "examples/reviews"))


def test_every_store_has_what_its_row_declares_and_every_model_an_example():
    for spec in EntityTable().stores:
        spec.check()
    for entity in ENTITIES:
        model = entity.model_class()
        assert model.model_validate(model.example("8a0e6a5c-0d5b-4b8e-9d52-3c0f7f1a9b10", 2))


class Incomplete:
    """A store that says nothing of a namespace or a canonical form."""

    server = configured_by = "nowhere"
    settings_class = from_settings = classify = write = count = existing_ids = None
    clear = progress = keep_progress = close = None


def test_a_row_claiming_what_its_store_lacks_is_refused_with_what_to_do():
    row = Entity("notes", "notes", f"{__name__}:Incomplete", "bookstore.schemas:Book")
    with pytest.raises(TableError, match=r"in_namespace, create_namespace, but its row says "):
        row.spec.check()
    with pytest.raises(TableError, match=r"no form, entries, but its row says verifiable=True"):
        dataclasses.replace(row, namespaced=False).spec.check()
    dataclasses.replace(row, namespaced=False, verifiable=False).spec.check()
    missing = dataclasses.replace(row, store="bookstore.schemas:Book")
    with pytest.raises(TableError, match="has no server, configured_by"):
        missing.spec.check()


def test_celery_routes_queues_and_tasks_come_from_the_table():
    from bookstore.broker import persist_task
    from tasks import app

    app.loader.import_default_modules()  # what a worker does at start: tasks.persist included
    queues = {q.name for q in app.conf.task_queues}
    for entity in ENTITIES:
        assert persist_task(entity) in app.tasks
        assert app.conf.task_routes[persist_task(entity)]["queue"] == entity.queue
        assert entity.queue in queues


def test_every_topic_keeps_every_record_and_accepts_keyless_ones_by_default():
    configs = topic_configs(load_settings().replace(kafka_topic_prefix=""))
    for entity in ENTITIES:
        assert configs[entity.name]["cleanup.policy"] == "delete", entity.name
        if entity.compactable:  # events (orders) keep ORDERS_RETENTION_MS, -1 by default too
            assert configs[entity.name]["retention.ms"] == "-1", entity.name
    assert configs[DEAD_LETTERS]["cleanup.policy"] == "delete"


def test_compaction_is_a_choice_for_the_entities_that_allow_it():
    settings = load_settings().replace(kafka_topic_prefix="", topic_compaction=True)
    configs = topic_configs(settings)
    for entity in ENTITIES:
        policy = configs[entity.name]["cleanup.policy"]
        assert policy == ("compact" if entity.compactable else "delete"), entity.name


def test_a_prefix_names_every_topic_of_a_deployment():
    names = topics(load_settings().replace(kafka_topic_prefix="blue."))
    assert names.all == ("blue.customers", "blue.books", "blue.orders", "blue.dead-letters")
    assert names.entity("blue.books").name == "books"
    for foreign in ("books", "green.books", "blue.dead-letters"):
        with pytest.raises(KeyError):
            names.entity(foreign)
    assert set(topic_configs(load_settings().replace(kafka_topic_prefix="blue."))) == set(names.all)


def test_open_stores_opens_the_store_of_every_row_lazily():
    with open_stores(load_settings()) as stores:  # no connection yet: no server needed
        assert set(stores) == {e.name for e in ENTITIES}
        for entity in ENTITIES:
            assert isinstance(stores[entity.name], entity.store_class())


@pytest.mark.parametrize("field", ["name", "queue"])
def test_a_row_reusing_a_name_or_a_queue_is_refused(field):
    twin = dataclasses.replace(ENTITIES[0], **{f: f"new-{f}" for f in ("name", "queue")})
    twin = dataclasses.replace(twin, **{field: getattr(ENTITIES[1], field)})
    with pytest.raises(ValueError, match=f"the {field} .* is already taken"):
        EntityTable((*ENTITIES, twin))
    EntityTable((*ENTITIES, dataclasses.replace(twin, **{field: f"new-{field}"})))


def test_a_row_may_not_take_the_audit_queue():
    with pytest.raises(ValueError, match="audit"):
        EntityTable((*ENTITIES, Entity("reviews", "audit", "m:S", "m:M")))


def test_what_runs_is_the_table_the_settings_carry(example):
    """A row passed in reaches the topics, their configuration, the stores and the queues:
    nothing reads a table built at import."""
    settings = load_settings().replace(kafka_topic_prefix="t.")
    assert settings.entities == load_table()  # the built-in rows (no package declares one here)
    grown = settings.running(EntityTable((*ENTITIES, REVIEWS)))
    assert grown.replace(bridge_batch_size=7).entities == grown.entities  # copies keep it
    assert "t.reviews" in topics(grown).entities and "t.reviews" not in topics(settings).entities
    assert "t.reviews" in topic_configs(grown)
    assert grown.entities.bridge_queues == ("postgres", "mongo", "redis", "reviews", "audit")
    with open_stores(grown, ["reviews"]) as stores:
        assert type(stores["reviews"]).__name__ == "ReviewStore"


def _loaded_after(code: str) -> set[str]:
    drivers = ("psycopg2", "pymongo", "redis")
    probe = f"import sys; {code}; print(*[d for d in {drivers!r} if d in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def test_only_the_processes_that_open_stores_import_their_drivers():
    """Reading the settings costs a command that opens no store nothing of the drivers' ~180 ms
    import; with `stores=True` every store's settings are validated at start."""
    load = "from bookstore.config import load_settings; load_settings"
    assert _loaded_after(f"{load}()") == set()
    assert _loaded_after(f"{load}(stores=True)") == {"psycopg2", "pymongo", "redis"}
