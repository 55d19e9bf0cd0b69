"""One module per store: each owns its schema, its idempotent batch write and its reads. Each
entity's store (a row of bookstore.entities.EntityTable), and the audit log, is a `Store`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from pydantic_settings import BaseSettings, SettingsConfigDict

from bookstore.setting_files import with_setting_files

if TYPE_CHECKING:
    from bookstore.records import Record


class StoreSettings(BaseSettings):
    """A store's own settings, declared in its module: read from the environment (and `.env`)
    under the store's own prefix (`class PostgresSettings(StoreSettings, env_prefix="POSTGRES_")`
    reads POSTGRES_DSN into `dsn`), validated with the rest when a process starts
    (bookstore.config.load_settings: a bad value is one ConfigError naming the variable)."""

    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="ignore")
    settings_customise_sources = classmethod(with_setting_files)  # NAME_FILE=path

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed, validated as the environment's values are."""
        return type(self)(**{**self.model_dump(), **changes})

    @classmethod
    def unreachable(cls) -> Self:
        """Settings pointing where no server answers (a closed port, a missing directory): the
        store contract's outage (tests/integration/store_contract.py). Every store says its own."""
        raise NotImplementedError(f"{cls.__name__} does not say where its server is not")

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables that give them to another process (a
        worker started on a namespace's stores): PREFIX + field, upper-case."""
        prefix = self.model_config.get("env_prefix") or ""
        return {
            f"{prefix}{name}".upper(): str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }


class Store(Protocol):
    """What the workers, `rebuild` and `verify` need of a store: every member below (checked
    against the class when a process opens stores: bookstore.entities.StoreSpec.check).
    Connections open lazily (a process may fork after building one); the first use creates what
    the store needs (table, index). Usually a subclass of `Closing` (`with store:` closes it).

    Its server is its own: its settings (`settings_class`, with a prefix of its own, saying
    `unreachable()` where its server is not), the translation of its driver's failures into the
    error policy's verdicts (a static `classify(exc) -> Verdict | None`, bookstore.errors) and
    the variable that points at the server (`configured_by`, named when it is unreachable).

    An entity's store also answers `existing_ids(ids)`, and its model (the row's `model`) gives
    `example(key, n)`, version n of a valid record: the contract suite and the benchmarks send
    those. What its row declares besides (bookstore.entities.StoreSpec): `verifiable`, its
    canonical form for `verify` (bookstore.verify): a static `form(entity)` of a validated
    record and `entries()`, the (key, form, source Kafka order or None) of everything it holds;
    `namespaced`, for `rebuild --into` and `verify --namespace` (bookstore.namespace):
    classmethods `in_namespace(own, namespace) -> own` (its settings with its data moved into
    the namespace; NamespaceError if it would be the live data) and `create_namespace(own,
    name)` (create what its first write needs, from its live settings), with the options its
    row declares (`namespace_options`). A store whose row says `namespaced=False` is refused
    there, never rebuilt "into" its live data."""

    server: ClassVar[str]  # what holds it, as `stats` names it ("PostgreSQL")
    configured_by: ClassVar[str]  # the variable naming its server ("POSTGRES_DSN")
    settings_class: ClassVar[type[StoreSettings]]

    @classmethod
    def from_settings(cls, own: Any) -> Self:
        """The store its own settings (an instance of its `settings_class`) describe."""
        ...

    @staticmethod
    def classify(exc: BaseException) -> Any:
        """What a failure of its driver means (a bookstore.errors.Verdict), None if not its."""
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
        """Remove every entity and the rebuild's progress (a rebuild starts from nothing)."""
        ...

    def progress(self) -> dict[str, int]:
        """How far a rebuild of this store has read: the next offset per "topic:partition",
        as `keep_progress` last recorded it, kept with the data (empty: from the first)."""
        ...

    def keep_progress(self, offsets: dict[str, int]) -> None:
        """Record `offsets` (the whole map, replacing the last) once a batch is stored."""
        ...

    def close(self) -> None: ...


class Closing:
    """`with store:` closes it at the end (a store's `close`)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
