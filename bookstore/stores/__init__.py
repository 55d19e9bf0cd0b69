"""One module per store: each owns its schema, its idempotent batch write and its reads. Each
entity's store (a row of bookstore.entities.EntityTable) is a `Store` and subclasses `Closing`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from bookstore.records import Record


class StoreSettings(BaseSettings):
    """A store's own settings, declared in its module: read from the environment (and `.env`)
    under the store's own prefix (`class PostgresSettings(StoreSettings, env_prefix="POSTGRES_")`
    reads POSTGRES_DSN into `dsn`), validated with the rest when a process starts
    (bookstore.config.load_settings: a bad value is one ConfigError naming the variable)."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore")

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed, validated as the environment's values are."""
        return type(self)(**{**self.model_dump(), **changes})


class Store(Protocol):
    """What the workers, `rebuild` and `verify` need of a store. Connections open lazily (a
    process may fork after building one); the first use creates what the store needs (table,
    index). A subclass of `Closing` (a context manager that closes it).

    Its server is its own: its settings (`settings_class`, with a prefix of its own), the
    translation of its driver's failures into the error policy's verdicts (a static
    `classify(exc) -> Verdict | None`, bookstore.errors) and the variable that points at the
    server (`configured_by`, named when it is unreachable).

    Optionally, for `verify` (bookstore.verify), its canonical form: a static `form(entity)` of
    a validated record and `entries()`, the (key, form, source Kafka order or None) of everything
    it holds; a store without them is rebuilt but not verified. For `rebuild --into` and
    `verify --namespace` (bookstore.namespace), classmethods
    `in_namespace(own, namespace) -> own` (its settings with its data moved into the
    namespace; NamespaceError if it would be the live data) and `create_namespace(own, name)`
    (create what its first write needs, from its live settings). A store without
    `in_namespace` is refused there, never rebuilt "into" its live data."""

    server: ClassVar[str]  # what holds it, as `stats` names it ("PostgreSQL")
    configured_by: ClassVar[str]  # the variable naming its server ("POSTGRES_DSN")
    settings_class: ClassVar[type[StoreSettings]]

    @classmethod
    def from_settings(cls, own: Any) -> Self:
        """The store its own settings (an instance of its `settings_class`) describe."""
        ...

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
    """`with store:` closes it at the end. Every store subclasses it: bookstore.errors finds the
    stores imported in a process through it, to ask them what a failure means."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
