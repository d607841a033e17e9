"""Which process a webhook's token starts: one table across tenants, keyed by the token.

A hook call carries no JWT: the token in its URL is the credential and names the
tenant, so the lookup cannot start from a tenant's partition. One indexed read
answers it. Rows are derived from the `HookIssued` events (written at save and
again by the catalog projector, so a save cut short before its row is repaired).
"""

from __future__ import annotations

from typing import Any

import psycopg_pool
from psycopg import sql

from infra.readmodel.postgres import column, create_schema, transaction
from infra.sqlite_file import SQLiteFile
from projections.hooks import Hook

_H = "loom_hooks"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS {h} (token TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
    "process_id TEXT NOT NULL, trigger_key TEXT NOT NULL)"
)


class SQLiteHookIndex:
    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path, synchronous="NORMAL")
        with self._file.transaction() as db:
            db.execute(_TABLE.format(h=_H))

    def add(self, hooks: list[Hook]) -> None:
        with self._file.transaction() as db:
            db.executemany(
                f"INSERT INTO {_H} VALUES (?,?,?,?) ON CONFLICT (token) DO NOTHING",
                [(h.token, h.tenant, h.process_id, h.key) for h in hooks],
            )

    def find(self, token: str) -> Hook | None:
        with self._file.transaction(write=False) as db:
            row = db.execute(
                f"SELECT tenant, process_id, trigger_key FROM {_H} WHERE token=?", (token,)
            ).fetchone()
        return None if row is None else Hook(token, *row)

    def close(self) -> None:
        self._file.close()


class PostgresHookIndex:
    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(_H))
        create_schema(pool, schema, lambda cur: cur.execute(sql.SQL(_TABLE).format(h=self._table)))

    def add(self, hooks: list[Hook]) -> None:
        if not hooks:
            return
        with transaction(self._pool) as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} VALUES (%s,%s,%s,%s) ON CONFLICT (token) DO NOTHING"
                ).format(self._table),
                [(h.token, h.tenant, h.process_id, h.key) for h in hooks],
            )

    def find(self, token: str) -> Hook | None:
        with transaction(self._pool) as cur:
            cur.execute(
                sql.SQL("SELECT tenant, process_id, trigger_key FROM {} WHERE token=%s").format(
                    self._table
                ),
                (token,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return Hook(token, column(row, 0), column(row, 1), column(row, 2))

    def close(self) -> None:
        pass
