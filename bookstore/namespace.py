"""A namespace: a set of stores next to the live ones, on the same servers.

`rebuild --into NAME` fills one and `verify --namespace NAME` checks one; the tests and the
benchmarks run every suite and every run in one of their own. Each store says where its data goes
in a namespace (its class's `in_namespace`): the built-in ones use PostgreSQL database NAME,
MongoDB database NAME, a Redis database of its own (`redis_db`, an option its row declares, since
Redis numbers its databases) and `messages.NAME.log` beside the live audit log. A store that
cannot name a namespace (its row says `namespaced=False`) is refused: rebuilding it "into" one
would empty its live data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bookstore.config import Settings
    from bookstore.entities import StoreSpec

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class NamespaceError(ValueError):
    """A namespace that would overlap the live stores, or a name no store accepts."""


@dataclass(frozen=True)
class Namespace:
    """Stores named `name` beside the live ones; `options`: what some stores need besides the
    name, as their rows declare it (`NamespaceOption`: `redis_db` for the orders store)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise NamespaceError(
                f"namespace {self.name!r}: lower-case letters, digits and _, starting with a letter"
            )

    def settings(self, live: Settings, stores: Iterable[str] | None = None) -> Settings:
        """`live` with each of `stores` (by name; every store of its table by default) moved
        into this namespace, as a process started with `env` reads them (a variable a store
        shares with the process's own settings, REDIS_URL, moves both); NamespaceError if one
        cannot be, or would land on its live data."""
        settings = live
        for spec in _specs(live, stores):
            if not spec.namespaced:
                raise NamespaceError(
                    f"the {spec.name} store cannot name a namespace (its row says namespaced="
                    "False): leave it out with --store, or rebuild it in place with --yes"
                )
            own = live.store(spec.name, spec.store_class().settings_class)
            moved = spec.store_class().in_namespace(own, self)
            settings = settings.with_store(spec.name, **moved.model_dump())
            shared = {
                variable.lower(): value
                for variable, value in moved.to_env().items()
                if variable.lower() in type(live).model_fields
            }
            if shared:
                settings = settings.replace(**shared)
        return settings

    def create(self, live: Settings, stores: Iterable[str] | None = None) -> None:
        """Create what the namespace's stores need before their first write, where each store
        says (its class's `create_namespace`, given its live settings; e.g. a database)."""
        for spec in _specs(live, stores):
            cls = spec.store_class()
            cls.create_namespace(live.store(spec.name, cls.settings_class), self.name)

    def reset(self, live: Settings, stores: Iterable[str] | None = None) -> Settings:
        """Create the namespace's stores and empty them (a test's or a run's own, from
        nothing); its settings."""
        self.create(live, stores)
        mine = self.settings(live, stores)
        for spec in _specs(live, stores):
            with spec.open(mine) as store:
                store.clear()
        return mine

    def env(self, live: Settings, stores: Iterable[str] | None = None) -> dict[str, str]:
        """The environment of a process that runs on this namespace's stores: each store's
        settings as its variables (`StoreSettings.to_env`)."""
        mine = self.settings(live, stores)
        return {
            name: value
            for spec in _specs(live, stores)
            for name, value in mine.store(spec.name).to_env().items()
        }


def _specs(live: Settings, stores: Iterable[str] | None) -> list[StoreSpec]:
    if stores is None:
        return list(live.entities.stores)
    try:
        return [live.entities.store(name) for name in stores]
    except KeyError as exc:
        raise NamespaceError(f"no store {exc.args[0]!r} in the entity table") from None


def option(namespace: Namespace, store: str, name: str) -> Any:
    """A namespace option a store needs; NamespaceError naming its flag when it is missing."""
    value = namespace.options.get(name)
    if value is None:
        flag = "--" + name.replace("_", "-")
        raise NamespaceError(f"the {store} store needs {flag} for a namespace")
    return value


def beside(path: str, name: str) -> str:
    """A file-backed store's namespace: a file of its own beside the live one, the namespace's
    name before the suffix (`messages.log` -> `messages.NAME.log`)."""
    live = Path(path)
    return str(live.with_name(f"{live.stem}.{name}{live.suffix}"))


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
