"""The tenant-partitioned event store: SQLite for one process, PostgreSQL for many."""

from __future__ import annotations

from pathlib import Path

from domain.ports import EventStore
from infra.store.postgres import PostgresEventStore
from infra.store.sqlite import SQLiteEventStore

_SQLITE_PREFIX = "sqlite:///"


def open_event_store(database_url: str) -> EventStore:
    """The event store at `database_url`.

    `sqlite:///relative/path.db` or `sqlite:////abs/path.db` (the parent
    directory is created); `postgresql://user[:pw]@host[:port]/db[?schema=S]`.
    Nothing connects until the store is first used.
    """
    if database_url.startswith(_SQLITE_PREFIX):
        path = database_url.removeprefix(_SQLITE_PREFIX)
        if not path or path.startswith(":memory:") or "?" in path:
            raise ValueError(f"need a file path in {database_url!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteEventStore(path)
    if database_url.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(database_url)
    raise ValueError(f"unsupported database URL {database_url!r}: use sqlite:/// or postgresql://")


__all__ = ["PostgresEventStore", "SQLiteEventStore", "open_event_store"]
