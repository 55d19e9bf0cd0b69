"""A namespace: a set of stores next to the live ones, on the same servers.

`rebuild --into NAME` fills one and `verify --namespace NAME` checks one. Each store says where
its data goes in a namespace (its class's `in_namespace`: the built-in ones use PostgreSQL
database NAME, MongoDB database NAME, a Redis database of its own, `--redis-db`, since Redis
numbers its databases); the audit log goes to `messages.NAME.log` beside the live one. A store
that cannot name a namespace is refused: rebuilding it "into" one would empty its live data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bookstore.entities import AUDIT_QUEUE as AUDIT

if TYPE_CHECKING:
    from bookstore.config import Settings

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class NamespaceError(ValueError):
    """A namespace that would overlap the live stores, or a name no store accepts."""


@dataclass(frozen=True)
class Namespace:
    name: str
    redis_db: int | None = None  # for a store whose server numbers its databases


def namespace_settings(
    live: Settings,
    name: str,
    redis_db: int | None,
    stores: Iterable[str],
) -> Settings:
    """The live settings with each of `stores` (by their queue's name, or `audit`) moved into
    namespace `name`; NamespaceError if one cannot be, or would land on its live data. The
    stores are those of the entities `live` runs."""
    if not NAME.fullmatch(name):
        raise NamespaceError(
            f"namespace {name!r}: lower-case letters, digits and _, starting with a letter"
        )
    namespace = Namespace(name, redis_db)
    settings = live
    for store in stores:
        if store == AUDIT:
            audit = Path(live.audit_log_path)
            path = audit.with_name(f"{audit.stem}.{name}{audit.suffix or '.log'}")
            settings = settings.replace(audit_log_path=str(path))
            continue
        cls = _store_class(live, store)
        move = getattr(cls, "in_namespace", None)
        if move is None:
            raise NamespaceError(
                f"the {store} store cannot name a namespace (its class has no in_namespace): "
                "leave it out with --store, or rebuild it in place with --yes"
            )
        moved = move(live.store(store, cls.settings_class), namespace)
        settings = settings.with_store(store, **moved.model_dump())
    return settings


def create_namespace(live: Settings, name: str, stores: Iterable[str]) -> None:
    """Create what the namespace's stores need before their first write, where the store says
    (its class's `create_namespace`, given its live settings; e.g. a PostgreSQL database)."""
    for store in stores:
        if store != AUDIT:
            cls = _store_class(live, store)
            create = getattr(cls, "create_namespace", None)
            if create is not None:
                create(live.store(store, cls.settings_class), name)


def _store_class(live: Settings, store: str) -> Any:
    try:
        return live.entities.of_store(store).store_class()
    except KeyError:
        raise NamespaceError(f"no store {store!r} in the entity table") from None


def url_path(url: str) -> str:
    """The path of a URL without its leading slash: a database's name or number."""
    return urlsplit(url).path.lstrip("/")


def with_url_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))


def refuse_live(store: str, live: str, name: str) -> None:
    """A namespace named like the store's live data would be the live data."""
    if name == live:
        raise NamespaceError(f"namespace {name!r} is the live {store} one (--yes replaces it)")
