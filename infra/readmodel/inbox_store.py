"""Where the inbox lives (projections.inbox): one table keyed by tenant, beside the statuses.

A row per execution that reached a `signal` element, holding its waits; an
upsert only wins with a higher position, so a late or repeated save never puts
back a wait that was answered. Lists read the rows that wait for something,
oldest first, through an index on (tenant, since). Written by the projector just
before the statuses and their tracked position, so a projector that stops
between the two folds the same documents again and changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg_pool
from psycopg import sql

from infra.readmodel.postgres import Cursor, column, create_schema, transaction
from infra.sqlite_file import SQLiteFile
from infra.store.naming import validate_tenant
from projections.inbox import InboxRow, SignalWait, decode_waits

_I = "loom_signal_inbox"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS {i} (tenant TEXT, execution_id TEXT, process_id TEXT, "
    "position BIGINT, since TEXT, waits {blob}, PRIMARY KEY (tenant, execution_id))"
)
_INDEX = "CREATE INDEX IF NOT EXISTS {i}_since ON {i} (tenant, since, execution_id)"


def _filters(process_id: str | None, mark: str) -> tuple[str, list[Any]]:
    where, params = f"tenant={mark} AND since IS NOT NULL", []
    if process_id is not None:
        where += f" AND process_id={mark}"
        params.append(process_id)
    return where, params


def _flatten(rows: list[Any]) -> list[SignalWait]:
    return [wait for row in rows for wait in decode_waits(bytes(column(row, 0)))]


class SQLiteInboxStore:
    """The inbox in the embedded default's read-model file."""

    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path, synchronous="NORMAL")
        with self._file.transaction() as db:
            db.execute(_TABLE.format(i=_I, blob="BLOB"))
            db.execute(_INDEX.format(i=_I))

    def save(self, tenant: str, rows: list[InboxRow]) -> None:
        validate_tenant(tenant)
        with self._file.transaction() as db:
            db.executemany(
                f"INSERT INTO {_I} VALUES (?,?,?,?,?,?) ON CONFLICT (tenant, execution_id) "
                "DO UPDATE SET process_id=excluded.process_id, position=excluded.position, "
                f"since=excluded.since, waits=excluded.waits "
                f"WHERE excluded.position > {_I}.position",
                [(tenant, *row) for row in rows],
            )

    def list(self, tenant: str, process_id: str | None, limit: int) -> list[SignalWait]:
        validate_tenant(tenant)
        where, params = _filters(process_id, "?")
        with self._file.transaction(write=False) as db:
            rows = db.execute(
                f"SELECT waits FROM {_I} WHERE {where} ORDER BY since, execution_id LIMIT ?",
                [tenant, *params, limit],
            ).fetchall()
        return _flatten(rows)

    def reset(self, tenant: str) -> None:
        validate_tenant(tenant)
        with self._file.transaction() as db:
            db.execute(f"DELETE FROM {_I} WHERE tenant=?", (tenant,))

    def close(self) -> None:
        self._file.close()


class PostgresInboxStore:
    """The inbox in PostgreSQL, on the event store's pool and schema."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(_I))

        def create(cur: Cursor) -> None:
            cur.execute(sql.SQL(_TABLE.format(i="{i}", blob="bytea")).format(i=self._table))
            cur.execute(
                sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {n} ON {i} (tenant, since, execution_id)"
                ).format(n=sql.Identifier(_I + "_since"), i=self._table)
            )

        create_schema(pool, schema, create)

    def save(self, tenant: str, rows: list[InboxRow]) -> None:
        validate_tenant(tenant)
        with transaction(self._pool) as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {i} AS r VALUES (%s,%s,%s,%s,%s,%s) "
                    "ON CONFLICT (tenant, execution_id) DO UPDATE SET "
                    "process_id=excluded.process_id, position=excluded.position, "
                    "since=excluded.since, waits=excluded.waits "
                    "WHERE excluded.position > r.position"
                ).format(i=self._table),
                [(tenant, *row) for row in rows],
            )

    def list(self, tenant: str, process_id: str | None, limit: int) -> list[SignalWait]:
        validate_tenant(tenant)
        where, params = _filters(process_id, "%s")  # conditions of constant text only
        with transaction(self._pool) as cur:
            cur.execute(
                sql.SQL(
                    "SELECT waits FROM {i} WHERE {w} ORDER BY since, execution_id LIMIT %s"
                ).format(i=self._table, w=sql.SQL(where)),
                [tenant, *params, limit],
            )
            rows = cur.fetchall()
        return _flatten(rows)

    def reset(self, tenant: str) -> None:
        validate_tenant(tenant)
        with transaction(self._pool) as cur:
            cur.execute(sql.SQL("DELETE FROM {i} WHERE tenant=%s").format(i=self._table), (tenant,))

    def close(self) -> None:
        """The pool belongs to the event store, which closes it."""
