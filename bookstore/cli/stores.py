"""What `rebuild` and `verify` share: which stores (`--store`), and where (`--into` /
`--namespace` NAME with `--redis-db`)."""

from __future__ import annotations

from enum import StrEnum

import typer

from bookstore.config import Settings
from bookstore.entities import ENTITIES

# every entity's store (by its queue's name), the audit log, or all of them
StoreChoice = StrEnum(
    "StoreChoice", {**{e.queue: e.queue for e in ENTITIES}, "audit": "audit", "all": "all"}
)


STORE_OPTION = typer.Option("all", "--store", help="which store")
REDIS_DB_OPTION = typer.Option(
    None, "--redis-db", min=0, help="the namespace's Redis database (Redis numbers them)"
)


def chosen(choice: StoreChoice, every: tuple[str, ...]) -> list[str]:
    """The stores chosen; `all`: `every` store the command knows."""
    return list(every) if choice == "all" else [choice.value]


def in_namespace(
    live: Settings, name: str | None, redis_db: int | None, stores: list[str]
) -> Settings:
    """The settings locating `stores` in namespace `name` (None: the live ones); a namespace no
    store can take is a usage error."""
    from bookstore.namespace import NamespaceError, namespace_settings

    if name is None:
        return live
    try:
        return namespace_settings(live, name, redis_db, stores)
    except NamespaceError as exc:
        raise typer.BadParameter(str(exc)) from None
