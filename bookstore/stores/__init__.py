"""One module per store: each owns its schema, its idempotent batch write and its reads. Each
entity's store (bookstore.entities.ENTITIES) is a `Store`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

if TYPE_CHECKING:
    from bookstore.config import Settings
    from bookstore.records import Record


class Store(Protocol):
    """What the workers, `rebuild` and `verify` need of a store. Connections open lazily (a
    process may fork after building one); the first use creates what the store needs (table,
    index). Usable as a context manager (`Closing`).

    Optionally, for `verify` (bookstore.verify), its canonical form: a static `form(entity)` of
    a validated record and `entries()`, the (key, form, source Kafka order or None) of everything
    it holds; a store without them is rebuilt but not verified. For `rebuild --into` and
    `verify --namespace` (bookstore.namespace), classmethods
    `in_namespace(settings, namespace) -> Settings` (the settings with this store's data moved
    into the namespace; NamespaceError if it would be the live data) and
    `create_namespace(live_settings, name)` (create what its first write needs). A store without
    `in_namespace` is refused there, never rebuilt "into" its live data."""

    server: ClassVar[str]  # what holds it, as `stats` names it ("PostgreSQL")

    @classmethod
    def from_settings(cls, settings: Settings) -> Self: ...

    def write(self, batch: list[tuple[Any, Record]]) -> list[tuple[Record, str]]:
        """Store validated (entity, record) pairs idempotently, last write wins in Kafka order;
        return the records refused for a reason about themselves alone (with the reason); raise
        for anything else (the error policy decides)."""
        ...

    def count(self) -> int:
        """How many entities it holds."""
        ...

    def clear(self) -> None:
        """Remove every entity (a rebuild starts from an empty store)."""
        ...

    def close(self) -> None: ...


class Closing:
    """`with store:` closes it at the end."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
