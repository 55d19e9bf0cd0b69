"""What `rebuild` and `verify` share: which stores (`--store`), and where (`--into` /
`--namespace` NAME with `--redis-db`)."""

from __future__ import annotations

import typer

from bookstore.config import Settings
from bookstore.entities import BUILT_IN

# every entity's store (by its queue's name), audit, or all; checked against the table the
# command runs (`chosen`), which installed packages may extend
STORE_OPTION = typer.Option(
    "all",
    "--store",
    metavar="STORE",
    help=f"which store: {', '.join(e.queue for e in BUILT_IN)} (or an installed entity's), "
    "audit or all",
)
REDIS_DB_OPTION = typer.Option(
    None, "--redis-db", min=0, help="the namespace's Redis database (Redis numbers them)"
)


def chosen(choice: str, every: tuple[str, ...]) -> list[str]:
    """The stores chosen; `all`: `every` store the command knows; any other name is a usage
    error (exit 2)."""
    if choice == "all":
        return list(every)
    if choice not in every:
        raise typer.BadParameter(
            f"{choice!r} is not one of: {', '.join(every)}, all", param_hint="--store"
        )
    return [choice]


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
