"""A namespace: a set of stores next to the live ones, on the same servers.

`rebuild --into NAME` fills one and `verify --namespace NAME` checks one: PostgreSQL database
NAME, MongoDB database NAME, a Redis database of its own (`--redis-db`; Redis databases are
numbered, not named) and the audit log `messages.NAME.log` beside the live one.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bookstore.config import Settings

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


class NamespaceError(ValueError):
    """A namespace that would overlap the live stores, or a name no store accepts."""


def namespace_settings(live: Settings, name: str, redis_db: int | None) -> Settings:
    """The live settings with every store moved into namespace `name`."""
    if not NAME.fullmatch(name):
        raise NamespaceError(
            f"namespace {name!r}: lower-case letters, digits and _, starting with a letter"
        )
    if name in (_path_name(live.postgres_dsn), live.mongo_db):
        raise NamespaceError(f"namespace {name!r} is the live one (use --yes to replace it)")
    if redis_db is None:
        raise NamespaceError("a namespace needs a Redis database of its own: --redis-db N")
    if redis_db == _redis_db(live.redis_url):
        raise NamespaceError(f"Redis database {redis_db} is the live one (REDIS_URL)")
    audit = Path(live.audit_log_path)
    return live.replace(
        postgres_dsn=_with_path(live.postgres_dsn, name),
        mongo_db=name,
        redis_url=_with_path(live.redis_url, str(redis_db)),
        audit_log_path=str(audit.with_name(f"{audit.stem}.{name}{audit.suffix or '.log'}")),
    )


def create_postgres_database(live: Settings, name: str) -> None:
    """Create the namespace's PostgreSQL database if missing (the role needs CREATEDB)."""
    import psycopg2

    conn = psycopg2.connect(live.postgres_dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')  # NAME allows no quote
    finally:
        conn.close()


def _path_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _redis_db(url: str) -> int:
    path = _path_name(url)
    return int(path) if path.isdigit() else 0


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))
