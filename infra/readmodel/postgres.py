"""What the PostgreSQL read models share: a transaction on the event store's pool, and
creating their tables when every role of a distributed Loom starts at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from domain.ports import StoreUnavailable

Cursor = psycopg.Cursor[Any]


@contextmanager
def transaction(pool: psycopg_pool.ConnectionPool[Any]) -> Iterator[Cursor]:
    """A cursor in a transaction; the server or the pool away is StoreUnavailable."""
    try:
        pool.open(wait=False)  # the event store opens its pool lazily too
        with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise StoreUnavailable(str(exc)) from exc


def create_schema(
    pool: psycopg_pool.ConnectionPool[Any], schema: str, create: Callable[[Cursor], None]
) -> None:
    """The schema and what `create` makes in it, once, even when roles start together.

    CREATE … IF NOT EXISTS from two sessions can still collide on the catalog's
    unique index, so the loser retries.
    """
    for attempt in range(5):
        try:
            with transaction(pool) as cur:
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                create(cur)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def column(row: Any, index: int) -> Any:
    """A row's column: the shared pool may hand out dict rows (the event store's) or tuples."""
    if isinstance(row, dict):
        return list(row.values())[index]
    return row[index]
