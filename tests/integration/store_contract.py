"""The contract every store is held to, on its real server. A store's tests subclass
`StoreContract` with its entity, a sample record and where its server is not
(tests/integration/test_stores.py does it for the entity table's stores, the fourth-entity test
for its example store), and pytest runs the contract against it.

The contract: a batch written twice changes nothing; the latest record in Kafka order
(timestamp, partition, offset) wins whatever the delivery order, since a redelivery or a retry
can bring an older record after a newer one; `clear` empties it; its canonical form (`form` of a
record, `entries` of what is stored: what `verify` compares) agrees with what it wrote; a
namespace holds data of its own, or the store says it cannot name one. Writes go through the
stores' own batch writes, as the workers do. And a server that cannot be reached is an outage
(retried), never the record's fault.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bookstore.config import Settings
from bookstore.entities import Entity, EntityTable
from bookstore.errors import Verdict, classify
from bookstore.namespace import NamespaceError, create_namespace, namespace_settings
from bookstore.records import Record
from bookstore.schemas import parse
from bookstore.verify import digest
from tests.integration.pipeline import Namespace

NS = Namespace("bookstore_stores", redis_db=8)
ELSEWHERE = ("bookstore_stores_ns", 9)  # the contract's namespace: databases, Redis database


def record(topic: str, value: dict, offset: int, timestamp: int = 1_700_000_000_000) -> Record:
    return Record(topic, 0, offset, None, timestamp, json.dumps(value).encode())


def write(store: Any, entity: Entity, *records: Record) -> None:
    """One batch, in this delivery order, as a worker writes it."""
    parsed = [(parse(entity.model_class(), r.value), r) for r in records]
    assert store.write(parsed) == []


def held(store: Any, key: str) -> bytes | None:
    """The digest of the stored entry's canonical form, as `verify` compares it."""
    return next((digest(form) for k, form, _ in store.entries() if k == key), None)


class StoreContract:
    """Subclass (named Test...) and set these; the contract's tests run against the store."""

    entity: ClassVar[Entity]
    # the store's own settings changed to point where its server is not
    unreachable: ClassVar[dict[str, str]]

    @staticmethod
    def sample(key: str, n: int) -> dict[str, Any]:
        """Version `n` of a valid record with id `key`."""
        raise NotImplementedError

    def own_settings(self, mine: Settings, tmp_path: Path) -> Any:
        """The store's settings for the contract (by default the suite's, in NS)."""
        return mine.store(self.entity.queue, self.entity.store_class().settings_class)

    @pytest.fixture(scope="class")
    @classmethod
    def mine(cls, settings: Settings) -> Settings:
        NS.reset(settings)
        return NS.settings(settings)

    @pytest.fixture
    def here(self, mine: Settings, tmp_path: Path) -> Settings:
        """`mine` running this store's entity alone, with the store's settings (a store outside
        the built-in table too)."""
        return mine.replace(
            stores={**mine.stores, self.entity.queue: self.own_settings(mine, tmp_path)}
        ).running(EntityTable((self.entity,)))

    def version(self, key: str, n: int, offset: int, **kw: int) -> Record:
        return record(self.entity.name, self.sample(key, n), offset, **kw)

    def expected(self, store: Any, key: str, n: int) -> bytes:
        model = self.entity.model_class()
        return digest(store.form(parse(model, json.dumps(self.sample(key, n)).encode())))

    def test_a_batch_written_twice_changes_nothing(self, here):
        key, row = str(uuid.uuid4()), self.entity
        with row.open_store(here) as store:
            before = store.count()
            write(store, row, self.version(key, 1, 10))
            write(store, row, self.version(key, 1, 10))
            assert store.count() == before + 1
            assert held(store, key) == self.expected(store, key, 1)

    def test_the_latest_record_in_kafka_order_wins_whatever_the_delivery_order(self, here):
        key, row, v = str(uuid.uuid4()), self.entity, self.version
        with row.open_store(here) as store:
            write(store, row, v(key, 2, 11))
            write(store, row, v(key, 1, 10))  # a late redelivery of the older record
            assert held(store, key) == self.expected(store, key, 2)
            write(store, row, v(key, 2, 11), v(key, 1, 10))  # in one batch
            assert held(store, key) == self.expected(store, key, 2)
            write(store, row, v(key, 3, 5, timestamp=1_700_000_000_001))  # a later time
            assert held(store, key) == self.expected(store, key, 3)

    def test_clear_empties_it(self, here):
        with self.entity.open_store(here) as store:
            write(store, self.entity, self.version(str(uuid.uuid4()), 1, 10))
            store.clear()
            assert store.count() == 0 and list(store.entries()) == []

    def test_an_unreachable_server_is_an_outage_never_the_records_fault(self, here):
        row = self.entity
        with row.open_store(here.with_store(row.queue, **self.unreachable)) as store:
            try:
                write(store, row, self.version(str(uuid.uuid4()), 1, 10))
            except Exception as exc:  # whatever the store raises, its verdict is what counts
                failure = exc
            else:
                pytest.fail("a write to an unreachable server succeeded")
        # the store's own translation of its driver's failures, then the policy's
        verdict = row.store_class().classify(failure) or classify(failure)
        assert verdict is Verdict.TRANSIENT, f"{type(failure).__name__}: {failure}"

    def test_a_namespace_holds_its_own_data_or_the_store_says_it_has_none(self, here):
        (name, redis_db), row = ELSEWHERE, self.entity
        if not hasattr(row.store_class(), "in_namespace"):
            with pytest.raises(NamespaceError, match="cannot name a namespace"):
                namespace_settings(here, name, redis_db, [row.queue])
            return
        there = namespace_settings(here, name, redis_db, [row.queue])
        create_namespace(here, name, [row.queue])
        key = str(uuid.uuid4())
        with row.open_store(here) as live, row.open_store(there) as other:
            other.clear()
            write(other, row, self.version(key, 1, 10))
            assert held(other, key) is not None and held(live, key) is None
            other.clear()
