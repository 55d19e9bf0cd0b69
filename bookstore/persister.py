"""Raw records to stored entities: validate a batch, write it, dead-letter what cannot be stored.

Shared by the Celery persistence tasks and the benchmark's direct sink, so both do exactly the
same work. One `Persister` per process holds that process's store connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bookstore import dead_letter_topic
from bookstore.config import Settings
from bookstore.dead_letter_topic import DeadLetter
from bookstore.errors import Unexplained, describe
from bookstore.isolation import write_isolating
from bookstore.records import Record
from bookstore.schemas import Rejected, parse
from bookstore.stores import Store


@dataclass
class Outcome:
    stored: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


class Persister:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._stores: dict[str, Store] = {}

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    def store_for(self, name: str) -> Store:
        """The store named `name` (its queue's), opened once."""
        if name not in self._stores:
            self._stores[name] = self.settings.entities.store(name).open(self.settings)
        return self._stores[name]

    def persist(self, store: str, records: list[Record]) -> Outcome:
        """Store every valid record in the store named `store` and dead-letter the others, each
        judged alone.

        Raises when retrying the whole batch is the answer: a transient failure (a server away),
        or `Unexplained` when the batch fails for a reason about none of its records.
        """
        outcome = self.store(store, records)
        dead_letter_topic.publish(self.settings, outcome.dead)
        return outcome

    def store(self, store: str, records: list[Record]) -> Outcome:
        """`persist` without publishing the dead letters: a rebuild judges the records again
        but leaves the dead-letter topic as the pipeline wrote it. A store of every record (the
        audit log) takes them as received; an entity's store only its entity's valid ones."""
        spec = self.settings.entities.store(store)
        target = self.store_for(store)
        if spec.every_record:
            target.write([(None, record) for record in records])
            return Outcome(stored=len(records))
        outcome = Outcome()
        model = self.settings.entities.by_name[spec.entities[0]].model_class()
        valid = []
        crashed: list[tuple[Record, Exception]] = []
        for record in records:
            try:
                valid.append((parse(model, record.value, self.settings.record_max_bytes), record))
            except Rejected as why:
                outcome.dead.append(DeadLetter(record, why.stage, why.reason))
            except Exception as exc:  # the validator itself failed on this record
                crashed.append((record, exc))
        if crashed:
            if len(crashed) == len(records):  # on every record: a bug, not the data
                raise Unexplained(f"validation failed on every record: {describe(crashed[0][1])}")
            outcome.dead.extend(DeadLetter(r, "validate", describe(exc)) for r, exc in crashed)
        if valid:
            refused = write_isolating(target.write, valid, self.settings.entities.loaded_stores())
            outcome.dead.extend(DeadLetter(record, "store", reason) for record, reason in refused)
            outcome.stored = len(valid) - len(refused)
        return outcome
