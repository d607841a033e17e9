"""Where the process and project lists live: two tables keyed by tenant, beside the statuses.

Unlike the statuses (a table per tenant, since executions are many), a tenant
has few processes and projects, so they share a table each and every query
names the tenant in its key. A row only moves forward: an upsert wins only with
a higher seq (its stream's length), so a late or repeated rebuild of an entry
never puts an older one back. The tracking row is the store position folded,
written in the same transaction, so a restarted projector resumes from it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import msgspec
import psycopg_pool
from psycopg import sql

from infra.readmodel.postgres import Cursor, column, create_schema, transaction
from infra.sqlite_file import SQLiteFile
from infra.store.naming import validate_tenant
from projections.catalog import Home, ProcessSummary, ProjectEntry

_P, _J, _T = "loom_catalog_processes", "loom_catalog_projects", "loom_catalog_tracking"
_encoder = msgspec.json.Encoder()
_summary = msgspec.json.Decoder(ProcessSummary)
_entry = msgspec.json.Decoder(ProjectEntry)

# Listed oldest first, as they were created; the id breaks a tie of one microsecond.
_TABLES = (
    "CREATE TABLE IF NOT EXISTS {p} (tenant TEXT, process_id TEXT, seq BIGINT, "
    "created_at TEXT, project_id TEXT, app_id TEXT, doc {blob}, PRIMARY KEY (tenant, process_id))",
    "CREATE TABLE IF NOT EXISTS {j} (tenant TEXT, project_id TEXT, seq BIGINT, "
    "created_at TEXT, doc {blob}, PRIMARY KEY (tenant, project_id))",
    "CREATE TABLE IF NOT EXISTS {t} (tenant TEXT PRIMARY KEY, position BIGINT)",
)


def _process_rows(tenant: str, rows: list[tuple[int, ProcessSummary]]) -> list[tuple[Any, ...]]:
    return [
        (tenant, s.process_id, seq, s.created_at, s.project_id, s.app_id, _encoder.encode(s))
        for seq, s in rows
    ]


def _project_rows(tenant: str, rows: list[tuple[int, ProjectEntry]]) -> list[tuple[Any, ...]]:
    return [(tenant, e.project_id, seq, e.created_at, _encoder.encode(e)) for seq, e in rows]


class SQLiteCatalogStore:
    """The lists in the embedded default's read-model file."""

    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path, synchronous="NORMAL")
        with self._file.transaction() as db:
            for create in _TABLES:
                db.execute(create.format(p=_P, j=_J, t=_T, blob="BLOB"))

    def save(
        self,
        tenant: str,
        processes: list[tuple[int, ProcessSummary]],
        projects: list[tuple[int, ProjectEntry]],
        position: int | None,
    ) -> None:
        validate_tenant(tenant)
        with self._file.transaction() as db:
            db.executemany(
                f"INSERT INTO {_P} VALUES (?,?,?,?,?,?,?) ON CONFLICT (tenant, process_id) "
                "DO UPDATE SET seq=excluded.seq, project_id=excluded.project_id, "
                f"app_id=excluded.app_id, doc=excluded.doc WHERE excluded.seq > {_P}.seq",
                _process_rows(tenant, processes),
            )
            db.executemany(
                f"INSERT INTO {_J} VALUES (?,?,?,?,?) ON CONFLICT (tenant, project_id) "
                f"DO UPDATE SET seq=excluded.seq, doc=excluded.doc WHERE excluded.seq > {_J}.seq",
                _project_rows(tenant, projects),
            )
            if position is not None:
                db.execute(
                    f"INSERT INTO {_T} VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE "
                    f"SET position=excluded.position WHERE excluded.position > {_T}.position",
                    (tenant, position),
                )

    def processes(self, tenant: str) -> list[ProcessSummary]:
        validate_tenant(tenant)
        with self._file.transaction(write=False) as db:
            rows = db.execute(
                f"SELECT doc FROM {_P} WHERE tenant=? ORDER BY created_at, process_id", (tenant,)
            ).fetchall()
        return [_summary.decode(row[0]) for row in rows]

    def projects(self, tenant: str) -> tuple[list[ProjectEntry], list[Home]]:
        validate_tenant(tenant)
        with self._file.transaction(write=False) as db:
            entries = db.execute(
                f"SELECT doc FROM {_J} WHERE tenant=? ORDER BY created_at, project_id", (tenant,)
            ).fetchall()
            homes = db.execute(
                f"SELECT process_id, project_id, app_id FROM {_P} WHERE tenant=?", (tenant,)
            ).fetchall()
        return [_entry.decode(row[0]) for row in entries], [Home(*row) for row in homes]

    def tracking(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._file.transaction(write=False) as db:
            row = db.execute(f"SELECT position FROM {_T} WHERE tenant=?", (tenant,)).fetchone()
        return 0 if row is None else int(row[0])

    def reset(self, tenant: str) -> None:
        validate_tenant(tenant)
        with self._file.transaction() as db:
            for table in (_P, _J, _T):
                db.execute(f"DELETE FROM {table} WHERE tenant=?", (tenant,))

    def close(self) -> None:
        self._file.close()


class PostgresCatalogStore:
    """The lists in PostgreSQL, sharing the event store's bounded pool and schema."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._schema = schema
        names = {"p": self._name(_P), "j": self._name(_J), "t": self._name(_T)}

        def create(cur: Cursor) -> None:
            for table in _TABLES:
                cur.execute(sql.SQL(table.replace("{blob}", "bytea")).format(**names))

        create_schema(pool, schema, create)

    def _name(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self._schema), sql.Identifier(table))

    def _tx(self) -> AbstractContextManager[Cursor]:
        return transaction(self._pool)

    def save(
        self,
        tenant: str,
        processes: list[tuple[int, ProcessSummary]],
        projects: list[tuple[int, ProjectEntry]],
        position: int | None,
    ) -> None:
        validate_tenant(tenant)
        with self._tx() as cur:
            if processes:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {t} AS r VALUES (%s,%s,%s,%s,%s,%s,%s) "
                        "ON CONFLICT (tenant, process_id) DO UPDATE SET seq=excluded.seq, "
                        "project_id=excluded.project_id, app_id=excluded.app_id, "
                        "doc=excluded.doc WHERE excluded.seq > r.seq"
                    ).format(t=self._name(_P)),
                    _process_rows(tenant, processes),
                )
            if projects:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {t} AS r VALUES (%s,%s,%s,%s,%s) "
                        "ON CONFLICT (tenant, project_id) DO UPDATE SET seq=excluded.seq, "
                        "doc=excluded.doc WHERE excluded.seq > r.seq"
                    ).format(t=self._name(_J)),
                    _project_rows(tenant, projects),
                )
            if position is not None:
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {t} AS k VALUES (%s, %s) ON CONFLICT (tenant) DO UPDATE "
                        "SET position=excluded.position WHERE excluded.position > k.position"
                    ).format(t=self._name(_T)),
                    (tenant, position),
                )

    def processes(self, tenant: str) -> list[ProcessSummary]:
        validate_tenant(tenant)
        with self._tx() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT doc FROM {} WHERE tenant=%s ORDER BY created_at, process_id"
                ).format(self._name(_P)),
                (tenant,),
            )
            return [_summary.decode(bytes(column(row, 0))) for row in cur.fetchall()]

    def projects(self, tenant: str) -> tuple[list[ProjectEntry], list[Home]]:
        validate_tenant(tenant)
        with self._tx() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT doc FROM {} WHERE tenant=%s ORDER BY created_at, project_id"
                ).format(self._name(_J)),
                (tenant,),
            )
            entries = [_entry.decode(bytes(column(row, 0))) for row in cur.fetchall()]
            cur.execute(
                sql.SQL("SELECT process_id, project_id, app_id FROM {} WHERE tenant=%s").format(
                    self._name(_P)
                ),
                (tenant,),
            )
            homes = [Home(*(column(row, i) for i in range(3))) for row in cur.fetchall()]
        return entries, homes

    def tracking(self, tenant: str) -> int:
        validate_tenant(tenant)
        with self._tx() as cur:
            cur.execute(
                sql.SQL("SELECT position FROM {} WHERE tenant=%s").format(self._name(_T)),
                (tenant,),
            )
            row = cur.fetchone()
        return 0 if row is None else int(column(row, 0))

    def reset(self, tenant: str) -> None:
        validate_tenant(tenant)
        with self._tx() as cur:
            for table in (_P, _J, _T):
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE tenant=%s").format(self._name(table)), (tenant,)
                )

    def close(self) -> None:
        """The pool belongs to the event store, which closes it."""
