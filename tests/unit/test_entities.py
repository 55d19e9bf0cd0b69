"""The entity table and what derives from it, without a server."""

from __future__ import annotations

import dataclasses

import pytest

from bookstore.config import load_settings
from bookstore.entities import ENTITIES, Entity, _check, open_stores
from bookstore.kafka import topic_configs


def test_every_row_names_a_store_and_a_schema_that_exist():
    for entity in ENTITIES:
        store, model = entity.store_class(), entity.model_class()
        for method in ("from_settings", "write", "count", "clear", "close"):
            assert callable(getattr(store, method)), (entity.topic, method)
        assert isinstance(store.server, str) and hasattr(model, "model_validate")


def test_celery_routes_queues_and_tasks_come_from_the_table():
    from tasks import app
    from tasks.queues import TASK_QUEUES

    app.loader.import_default_modules()  # what a worker does at start: tasks.persist included
    queues = {q.name for q in TASK_QUEUES}
    for entity in ENTITIES:
        assert entity.task in app.tasks
        assert app.conf.task_routes[entity.task]["queue"] == entity.queue
        assert entity.queue in queues


def test_the_topics_are_configured_from_the_table():
    configs = topic_configs(load_settings())
    for entity in ENTITIES:
        policy = configs[entity.topic]["cleanup.policy"]
        assert policy == ("compact" if entity.compacted else "delete"), entity.topic


def test_open_stores_opens_the_store_of_every_row_lazily():
    with open_stores(load_settings()) as stores:  # no connection yet: no server needed
        assert set(stores) == {e.topic for e in ENTITIES}
        for entity in ENTITIES:
            assert isinstance(stores[entity.topic], entity.store_class())


@pytest.mark.parametrize("field", ["topic", "queue", "task"])
def test_a_row_reusing_a_topic_queue_or_task_is_refused(field):
    twin = dataclasses.replace(ENTITIES[0], **{f: f"new-{f}" for f in ("topic", "queue", "task")})
    twin = dataclasses.replace(twin, **{field: getattr(ENTITIES[1], field)})
    with pytest.raises(ValueError, match=f"the {field} .* is already taken"):
        _check((*ENTITIES, twin))
    _check((*ENTITIES, dataclasses.replace(twin, **{field: f"new-{field}"})))


def test_a_row_may_not_take_the_audit_queue():
    with pytest.raises(ValueError, match="audit"):
        _check((*ENTITIES, Entity("reviews", "audit", "t.reviews", "m:S", "m:M")))
