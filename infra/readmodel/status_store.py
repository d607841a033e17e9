"""Where the status read model lives: one table per tenant beside its events.

Each row is one execution's status document and the seq of the last event
folded into it; an upsert only wins with a higher seq, so a redelivered or
re-read event never moves a document backwards. A per-tenant tracking row
holds the last store position the projector folded, written in the same
transaction as the documents, so a restarted projector resumes from it.
(The adapters of projections.status.StatusStore.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import msgspec
import psycopg
import psycopg_pool
from psycopg import sql

from infra.readmodel.postgres import Cursor, column, create_schema, transaction
from infra.sqlite_file import SQLiteFile
from infra.store.naming import tenant_table, validate_tenant
from projections.status import ExecutionStatus, ExecutionSummary, StatusQuery, StatusRow

_decoder = msgspec.json.Decoder(ExecutionStatus)
# A listed document is the whole one read without its nodes and input.
_summary_decoder = msgspec.json.Decoder(ExecutionSummary)


def _filters(query: StatusQuery, mark: str) -> tuple[str, list[Any]]:
    """The query's WHERE conditions, `mark` standing for each parameter, and the parameters."""
    where, params = ["1=1"], []
    if query.process_id is not None:
        where.append(f"process_id={mark}")
        params.append(query.process_id)
    if query.status is not None:
        where.append(f"status={mark}")
        params.append(query.status)
    if query.before is not None:
        where.append(f"(started_at, execution_id) < ({mark}, {mark})")
        params.extend(query.before)
    return " AND ".join(where), params


class SQLiteStatusStore:
    """The status read model in a SQLite file (the embedded default)."""

    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path, synchronous="NORMAL")
        self._ready: set[str] = set()
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS loom_tracking "
                "(tenant TEXT PRIMARY KEY, position INTEGER)"
            )

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        # The read model is rebuildable from the store: no fsync per commit.
        with self._file.transaction(write=write) as db:
            yield db

    def _table(self, db: sqlite3.Connection, tenant: str) -> str:
        table = tenant_table(tenant, "status")
        if tenant not in self._ready:
            # Created in a transaction of its own and only then marked ready, so
            # no other thread can query the table before it is committed.
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (execution_id TEXT PRIMARY KEY, "
                "process_id TEXT, status TEXT, started_at TEXT, position INTEGER, doc BLOB)"
            )
            db.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_started ON {table} (started_at, execution_id)"
            )
            db.execute("COMMIT")
            db.execute("BEGIN IMMEDIATE")
            self._ready.add(tenant)
        return table

    def save(self, tenant: str, rows: Sequence[StatusRow], position: int | None = None) -> None:
        """Upsert `status_row`s (a row only wins with a higher seq) and the tenant's position."""
        with self._tx() as db:
            table = self._table(db, tenant)
            db.executemany(
                f"INSERT INTO {table} VALUES (?,?,?,?,?,?) ON CONFLICT(execution_id) DO UPDATE "
                "SET process_id=excluded.process_id, status=excluded.status, "
                "started_at=excluded.started_at, position=excluded.position, doc=excluded.doc "
                f"WHERE excluded.position > {table}.position",
                rows,
            )
            if position is not None:
                db.execute(
                    "INSERT INTO loom_tracking VALUES (?, ?) ON CONFLICT(tenant) DO UPDATE "
                    "SET position=excluded.position "
                    "WHERE excluded.position > loom_tracking.position",
                    (tenant, position),
                )

    def get(self, tenant: str, execution_id: str) -> ExecutionStatus | None:
        with self._tx(write=False) as db:
            row = db.execute(
                f"SELECT doc FROM {self._table(db, tenant)} WHERE execution_id=?", (execution_id,)
            ).fetchone()
        return None if row is None else _decoder.decode(row[0])

    def list(self, tenant: str, query: StatusQuery) -> list[ExecutionSummary]:
        where, params = _filters(query, "?")
        with self._tx(write=False) as db:
            rows = db.execute(
                f"SELECT doc FROM {self._table(db, tenant)} WHERE {where} "
                "ORDER BY started_at DESC, execution_id DESC LIMIT ?",
                [*params, query.limit],
            ).fetchall()
        return [_summary_decoder.decode(row[0]) for row in rows]

    def running(self, tenant: str) -> list[str]:
        with self._tx(write=False) as db:
            rows = db.execute(
                f"SELECT execution_id FROM {self._table(db, tenant)} "
                "WHERE status IN ('running', 'pending')"
            ).fetchall()
        return [row[0] for row in rows]

    def tracking(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._tx(write=False) as db:
            row = db.execute(
                "SELECT position FROM loom_tracking WHERE tenant=?", (tenant,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def reset(self, tenant: str) -> None:
        """Forget the tenant's documents and position (before a rebuild)."""
        with self._tx() as db:
            db.execute(f"DELETE FROM {self._table(db, tenant)}")
            db.execute("DELETE FROM loom_tracking WHERE tenant=?", (tenant,))

    def close(self) -> None:
        self._file.close()


class PostgresStatusStore:
    """The status read model in PostgreSQL, sharing the event store's bounded pool and schema."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._ready: set[str] = set()

        def create(cur: Cursor) -> None:
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.loom_tracking "
                    "(tenant text PRIMARY KEY, position bigint)"
                ).format(sql.Identifier(schema))
            )

        create_schema(pool, schema, create)

    def _tx(self) -> AbstractContextManager[Cursor]:
        return transaction(self._pool)

    def _table(self, cur: psycopg.Cursor[Any], tenant: str) -> sql.Composed:
        name = tenant_table(tenant, "status")
        table = sql.SQL("{}.{}").format(sql.Identifier(self._schema), sql.Identifier(name))
        if tenant not in self._ready:
            self._create(name, table)
            self._ready.add(tenant)
        return table

    def _create(self, name: str, table: sql.Composed) -> None:
        # Committed on a connection of its own before the tenant counts as ready, so no
        # other thread queries the table before it exists for everyone.
        with self._tx() as cur:
            cur.execute(sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(name))
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (execution_id text PRIMARY KEY, "
                    "process_id text, status text, started_at text, position bigint, doc bytea)"
                ).format(table)
            )
            cur.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (started_at, execution_id)").format(
                    sql.Identifier(name + "_started"), table
                )
            )

    def _tracking(self) -> sql.Composed:
        return sql.SQL("{}.loom_tracking").format(sql.Identifier(self._schema))

    def save(self, tenant: str, rows: Sequence[StatusRow], position: int | None = None) -> None:
        with self._tx() as cur:
            table = self._table(cur, tenant)
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {t} AS s VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (execution_id) "
                    "DO UPDATE SET process_id=excluded.process_id, status=excluded.status, "
                    "started_at=excluded.started_at, position=excluded.position, doc=excluded.doc "
                    "WHERE excluded.position > s.position"
                ).format(t=table),
                rows,
            )
            if position is not None:
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {t} AS k VALUES (%s, %s) ON CONFLICT (tenant) DO UPDATE "
                        "SET position=excluded.position WHERE excluded.position > k.position"
                    ).format(t=self._tracking()),
                    (tenant, position),
                )

    def get(self, tenant: str, execution_id: str) -> ExecutionStatus | None:
        with self._tx() as cur:
            cur.execute(
                sql.SQL("SELECT doc FROM {} WHERE execution_id=%s").format(
                    self._table(cur, tenant)
                ),
                (execution_id,),
            )
            row = cur.fetchone()
        return None if row is None else _decoder.decode(bytes(_first(row)))

    def list(self, tenant: str, query: StatusQuery) -> list[ExecutionSummary]:
        where, params = _filters(query, "%s")  # conditions of constant text only
        with self._tx() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT doc FROM {} WHERE {} ORDER BY started_at DESC, execution_id DESC "
                    "LIMIT %s"
                ).format(self._table(cur, tenant), sql.SQL(where)),
                [*params, query.limit],
            )
            rows = cur.fetchall()
        return [_summary_decoder.decode(bytes(_first(row))) for row in rows]

    def running(self, tenant: str) -> list[str]:
        with self._tx() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT execution_id FROM {} WHERE status IN ('running', 'pending')"
                ).format(self._table(cur, tenant))
            )
            return [_first(row) for row in cur.fetchall()]

    def tracking(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._tx() as cur:
            cur.execute(
                sql.SQL("SELECT position FROM {} WHERE tenant=%s").format(self._tracking()),
                (tenant,),
            )
            row = cur.fetchone()
        return 0 if row is None else int(_first(row))

    def reset(self, tenant: str) -> None:
        with self._tx() as cur:
            cur.execute(sql.SQL("DELETE FROM {}").format(self._table(cur, tenant)))
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE tenant=%s").format(self._tracking()), (tenant,)
            )

    def close(self) -> None:
        """The pool belongs to the event store, which closes it."""


def _first(row: Any) -> Any:
    return column(row, 0)
