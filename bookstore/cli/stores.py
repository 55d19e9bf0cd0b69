"""What `rebuild` and `verify` share: which stores (`--store`), and where (`--into` /
`--namespace` NAME, with the options the table's stores declare for a namespace: `--redis-db`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from bookstore.config import Settings
from bookstore.entities import load_table

# every store of the entity table (by its queue's name: each entity's, audit), or all; checked
# against the table the command runs (`chosen`), which installed packages may extend
STORE_OPTION = typer.Option(
    "all",
    "--store",
    metavar="STORE",
    help=f"which store: {', '.join(s.name for s in load_table().stores)} or all",
)


def with_namespace_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command`, taking its `**options` as the CLI options the table's stores declare for a
    namespace (`NamespaceOption`: the orders store's `--redis-db`), so that a store added to the
    table brings its own."""
    declared = {o.name: o for s in load_table().stores for o in s.namespace_options}
    parameters = [
        p for p in inspect.signature(command).parameters.values() if p.kind != p.VAR_KEYWORD
    ]
    for name, declared_option in declared.items():
        default: Any = typer.Option(None, declared_option.flag, help=declared_option.help)
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=declared_option.type | None,
            )
        )
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return command


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
    live: Settings,
    name: str | None,
    options: dict[str, Any],
    stores: list[str],
    create: bool = False,
) -> Settings:
    """The settings locating `stores` in namespace `name` (None: the live ones), created first
    if `create`; a namespace no store can take is a usage error."""
    from bookstore.namespace import Namespace, NamespaceError

    if name is None:
        return live
    try:
        namespace = Namespace(name, {k: v for k, v in options.items() if v is not None})
        if create:
            namespace.create(live, stores)
        return namespace.settings(live, stores)
    except NamespaceError as exc:
        raise typer.BadParameter(str(exc)) from None
