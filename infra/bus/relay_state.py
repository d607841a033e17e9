"""Where the relay keeps its place, and who may relay: one position per tenant, one lease
(the adapters of domain.ports.RelayState).

The position is the last store position whose events JetStream acknowledged; a
relay resumes from it. The lease makes one relay the publisher for a whole
database while any number of writer processes run one each: on PostgreSQL it
is a session advisory lock on a connection of its own (released by the server
the moment that process dies); on SQLite there is one process, which always
leads.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from domain.ports import StoreUnavailable
from infra.sqlite_file import SQLiteFile
from infra.store.naming import validate_tenant
from infra.store.postgres import PostgresParams

_TABLE = "loom_relay"


class SQLiteRelayState:
    """Relay positions in a SQLite file (the embedded store's single process always leads)."""

    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path)
        self._ready = False

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._file.transaction() as db:
            if not self._ready:
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {_TABLE} "
                    "(tenant TEXT PRIMARY KEY, position INTEGER)"
                )
                self._ready = True
            yield db

    def position(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._tx() as db:
            row = db.execute(f"SELECT position FROM {_TABLE} WHERE tenant=?", (tenant,)).fetchone()
        return 0 if row is None else int(row[0])

    def save(self, positions: Mapping[str, int]) -> None:
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO {_TABLE} VALUES (?, ?) ON CONFLICT(tenant) DO UPDATE "
                f"SET position=excluded.position WHERE excluded.position > {_TABLE}.position",
                list(positions.items()),
            )

    async def lead(self) -> bool:
        return True

    async def close(self) -> None:
        self._file.close()


class PostgresRelayState:
    """Relay positions beside the events (the store's pool and schema), and the relay lease."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        schema: str,
        params: PostgresParams,
        *,
        check_every_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._params = params
        self._check_every_s = check_every_s
        self._table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(_TABLE))
        self._ready = False
        digest = hashlib.sha256(f"loom-relay:{schema}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self._lease: psycopg.AsyncConnection[Any] | None = None
        self._leading = False
        self._checked = 0.0

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            self._pool.open(wait=False)  # the event store opens its pool lazily too
            if not self._ready:
                self._ensure_table()
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _ensure_table(self) -> None:
        # Roles start together: CREATE … IF NOT EXISTS from two sessions can collide on
        # the catalog's unique index, so the loser tries again.
        for attempt in range(5):
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self._schema)
                        )
                    )
                    cur.execute(
                        sql.SQL(
                            "CREATE TABLE IF NOT EXISTS {} "
                            "(tenant text PRIMARY KEY, position bigint)"
                        ).format(self._table)
                    )
                self._ready = True
                return
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def position(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._tx() as cur:
            cur.execute(
                sql.SQL("SELECT position FROM {} WHERE tenant=%s").format(self._table), (tenant,)
            )
            row = cur.fetchone()
        if row is None:
            return 0
        value = next(iter(row.values())) if isinstance(row, dict) else row[0]
        return int(value)

    def save(self, positions: Mapping[str, int]) -> None:
        with self._tx() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} AS r VALUES (%s, %s) ON CONFLICT (tenant) DO UPDATE "
                    "SET position=excluded.position WHERE excluded.position > r.position"
                ).format(self._table),
                list(positions.items()),
            )

    async def lead(self) -> bool:
        """Whether this process is the relay: take the lease if it is free, keep it if held.

        A held lease is checked at most every `check_every_s`; a broken connection
        loses it (the server releases the lock with the session).
        """
        now = time.monotonic()
        if self._leading and now - self._checked < self._check_every_s:
            return True
        try:
            if self._lease is None or self._lease.closed:
                self._leading = False
                self._lease = await psycopg.AsyncConnection.connect(
                    dbname=self._params.dbname,
                    host=self._params.host,
                    port=self._params.port,
                    user=self._params.user,
                    password=self._params.password,
                    connect_timeout=3,
                    autocommit=True,
                    application_name="loom-relay-lease",
                )
            if self._leading:
                await self._lease.execute("SELECT 1")
            else:
                cursor = await self._lease.execute(
                    "SELECT pg_try_advisory_lock(%s)", (self._lock_key,)
                )
                row = await cursor.fetchone()
                self._leading = bool(row and row[0])
            self._checked = now
        except psycopg.Error:
            self._leading = False
            await self._drop_lease()
        return self._leading

    async def close(self) -> None:
        self._leading = False
        await self._drop_lease()

    async def _drop_lease(self) -> None:
        if self._lease is not None:
            with contextlib.suppress(psycopg.Error):
                await self._lease.close()
            self._lease = None
