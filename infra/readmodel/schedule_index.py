"""The schedules index: one table across tenants, one row per live schedule.

Beside the hook index (the read model's SQLite file, or the store's PostgreSQL
schema). Every written row takes the next `revision`, so engines that run take up
new schedules by reading the rows above the last revision they saw; writers take
the table's write lock first, so revisions become visible in the order they grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg_pool
from psycopg import sql

from domain.triggers import ScheduleTrigger
from infra.readmodel.postgres import Cursor, column, create_schema, transaction
from infra.sqlite_file import SQLiteFile
from projections.schedules import ScheduleRow

_S = "loom_schedules"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS {s} (tenant TEXT NOT NULL, process_id TEXT NOT NULL, "
    "trigger_key TEXT NOT NULL, spec TEXT NOT NULL, since_version INTEGER NOT NULL, "
    "since DOUBLE PRECISION NOT NULL, last_fired DOUBLE PRECISION, revision BIGINT NOT NULL, "
    "PRIMARY KEY (tenant, process_id, trigger_key))"
)
_REVISION_INDEX = "CREATE INDEX IF NOT EXISTS {i} ON {s} (revision)"
_COLUMNS = "tenant, process_id, trigger_key, spec, since_version, since, last_fired, revision"
_decode = msgspec.json.Decoder(ScheduleTrigger)


def _row(values: Sequence[Any]) -> ScheduleRow:
    tenant, process_id, key, spec, since_version, since, last_fired, revision = values
    return ScheduleRow(
        tenant, process_id, key, _decode.decode(spec), since_version, since, last_fired, revision
    )


def _writes(
    existing: dict[str, int], live: list[ScheduleRow], revision: int
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The keys to delete and the rows to write, so the process's rows become `live`."""
    keep = {r.key for r in live}
    gone = [key for key in existing if key not in keep]
    rows = []
    for r in live:
        if existing.get(r.key) != r.since_version:
            revision += 1
            spec = msgspec.json.encode(r.trigger).decode()
            rows.append((r.tenant, r.process_id, r.key, spec, r.since_version, r.since, revision))
    return gone, rows


class SQLiteScheduleIndex:
    def __init__(self, path: str) -> None:
        self._file = SQLiteFile(path, synchronous="NORMAL")
        with self._file.transaction() as db:
            db.execute(_TABLE.format(s=_S))
            db.execute(_REVISION_INDEX.format(i=f"{_S}_revision", s=_S))

    def put(self, tenant: str, process_id: str, live: list[ScheduleRow]) -> None:
        where = "tenant=? AND process_id=?"
        with self._file.transaction() as db:
            existing = dict(
                db.execute(
                    f"SELECT trigger_key, since_version FROM {_S} WHERE {where}",
                    (tenant, process_id),
                ).fetchall()
            )
            (top,) = db.execute(f"SELECT COALESCE(MAX(revision), 0) FROM {_S}").fetchone()
            gone, rows = _writes(existing, live, top)
            db.executemany(
                f"DELETE FROM {_S} WHERE {where} AND trigger_key=?",
                [(tenant, process_id, key) for key in gone],
            )
            db.executemany(
                f"INSERT OR REPLACE INTO {_S} ({_COLUMNS}) VALUES (?,?,?,?,?,?,NULL,?)", rows
            )

    def rows(self) -> list[ScheduleRow]:
        return self._select("", ())

    def changed(self, after: int) -> list[ScheduleRow]:
        return self._select("WHERE revision > ?", (after,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[ScheduleRow]:
        with self._file.transaction(write=False) as db:
            found = db.execute(f"SELECT {_COLUMNS} FROM {_S} {where}", args).fetchall()
        return [_row(values) for values in found]

    def fired(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> None:
        with self._file.transaction() as db:
            db.execute(
                f"UPDATE {_S} SET last_fired = MAX(COALESCE(last_fired, ?), ?) "
                "WHERE tenant=? AND process_id=? AND trigger_key=? AND since_version=?",
                (tick, tick, tenant, process_id, key, since_version),
            )

    def close(self) -> None:
        self._file.close()


class PostgresScheduleIndex:
    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], schema: str) -> None:
        self._pool = pool
        self._table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(_S))

        def create(cur: Cursor) -> None:
            cur.execute(sql.SQL(_TABLE).format(s=self._table))
            index = sql.Identifier(f"{_S}_revision")
            cur.execute(sql.SQL(_REVISION_INDEX).format(i=index, s=self._table))

        create_schema(pool, schema, create)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._table)

    def put(self, tenant: str, process_id: str, live: list[ScheduleRow]) -> None:
        where = "tenant=%s AND process_id=%s"
        with transaction(self._pool) as cur:
            # Writers one at a time: a revision is visible before any larger one is written.
            cur.execute(self._sql("LOCK TABLE {s} IN EXCLUSIVE MODE"))
            cur.execute(
                self._sql(f"SELECT trigger_key, since_version FROM {{s}} WHERE {where}"),
                (tenant, process_id),
            )
            existing = {column(r, 0): column(r, 1) for r in cur.fetchall()}
            cur.execute(self._sql("SELECT COALESCE(MAX(revision), 0) FROM {s}"))
            gone, rows = _writes(existing, live, int(column(cur.fetchone(), 0)))
            for key in gone:
                cur.execute(
                    self._sql(f"DELETE FROM {{s}} WHERE {where} AND trigger_key=%s"),
                    (tenant, process_id, key),
                )
            if rows:
                cur.executemany(
                    self._sql(
                        f"INSERT INTO {{s}} ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,NULL,%s) "
                        "ON CONFLICT (tenant, process_id, trigger_key) DO UPDATE SET "
                        "spec=EXCLUDED.spec, since_version=EXCLUDED.since_version, "
                        "since=EXCLUDED.since, last_fired=NULL, revision=EXCLUDED.revision"
                    ),
                    rows,
                )

    def rows(self) -> list[ScheduleRow]:
        return self._select("", ())

    def changed(self, after: int) -> list[ScheduleRow]:
        return self._select("WHERE revision > %s", (after,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[ScheduleRow]:
        with transaction(self._pool) as cur:
            cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {{s}} {where}"), args)
            found = cur.fetchall()
        return [_row([column(r, i) for i in range(8)]) for r in found]

    def fired(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> None:
        with transaction(self._pool) as cur:
            cur.execute(
                self._sql(
                    "UPDATE {s} SET last_fired = GREATEST(COALESCE(last_fired, %s), %s) "
                    "WHERE tenant=%s AND process_id=%s AND trigger_key=%s AND since_version=%s"
                ),
                (tick, tick, tenant, process_id, key, since_version),
            )

    def close(self) -> None:
        pass
