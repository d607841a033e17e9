"""The event store on one SQLite file: one events table per tenant."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from domain.ports import RecordedEvent, StoreUnavailable
from infra.store import codec
from infra.store.append import ChainedAppend, Head
from infra.store.naming import events_table, validate_tenant

_REGISTRY = "loom_tenants"


class SQLiteEventStore(ChainedAppend[SQLiteApplicationRecorder]):
    """An EventStore in one SQLite file (WAL): one events table per tenant, created on first use.

    Positions are the table's rowids, so they are per tenant and increase in
    commit order (SQLite has one writer at a time). Never VACUUM the file: it
    may renumber rowids, and with them the positions projections track.
    """

    def __init__(self, path: str, *, lock_timeout: int = 5) -> None:
        self._datastore = SQLiteDatastore(path, lock_timeout=lock_timeout)
        self._recorders: dict[str, SQLiteApplicationRecorder] = {}
        self._create_lock = threading.Lock()
        self._registry_ready = False

    def read(
        self, tenant: str, stream_id: UUID, *, after: int = 0, upto: int | None = None
    ) -> list[RecordedEvent]:
        rows = self._stream_rows(tenant, stream_id, after, upto)
        events = codec.decode_many([row[1] for row in rows])
        return [
            RecordedEvent(stream_id, row[0], event) for row, event in zip(rows, events, strict=True)
        ]

    def read_states(self, tenant: str, stream_id: UUID) -> list[tuple[int, bytes]]:
        """The stream's (seq, stored state) undecoded, in seq order (for the hash chain)."""
        return [(row[0], bytes(row[1])) for row in self._stream_rows(tenant, stream_id, 0, None)]

    def _stream_rows(
        self, tenant: str, stream_id: UUID, after: int, upto: int | None
    ) -> list[tuple[int, bytes]]:
        recorder = self._partition(tenant)
        # The recorder's select_events builds a StoredEvent and a UUID per row;
        # replay reads whole streams, so select the two needed columns directly.
        statement = (
            f"SELECT originator_version, state FROM {recorder.events_table_name} "
            "WHERE originator_id=? AND originator_version>?"
        )
        params: list[object] = [stream_id.hex, after]
        if upto is not None:
            statement += " AND originator_version<=?"
            params.append(upto)
        statement += " ORDER BY originator_version"
        with _unavailable_on_failure(), self._datastore.transaction(commit=False) as cursor:
            cursor.sqlite_cursor.row_factory = None  # plain tuples: cheaper than sqlite3.Row
            cursor.execute(statement, params)
            rows: list[tuple[int, bytes]] = cursor.sqlite_cursor.fetchall()
        return rows

    def read_all(self, tenant: str, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        recorder = self._partition(tenant)
        with _unavailable_on_failure():
            notifications = recorder.select_notifications(start=after + 1, limit=limit)
        return codec.recorded_events(notifications)

    def read_all_states(
        self, tenant: str, *, after: int = 0, limit: int = 1000, topics: Sequence[str] = ()
    ) -> list[codec.StoredState]:
        """As `read_all`, undecoded and only of the event types named in `topics` if any:
        the stored states with their positions (for export and the tools)."""
        recorder = self._partition(tenant)
        with _unavailable_on_failure():
            notifications = recorder.select_notifications(
                start=after + 1, limit=limit, topics=topics
            )
        return codec.stored_states(notifications)

    def max_position(self, tenant: str) -> int:
        recorder = self._partition(tenant)
        with _unavailable_on_failure():
            return recorder.max_notification_id() or 0

    def tenants(self) -> list[str]:
        with _unavailable_on_failure():
            self._ensure_registry()
            with self._datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT tenant FROM {_REGISTRY} ORDER BY tenant")
                return [row[0] for row in cursor.fetchall()]

    def close(self) -> None:
        self._datastore.close()

    def _partition(self, tenant: str) -> SQLiteApplicationRecorder:
        """The tenant's recorder, its table created on first use."""
        recorder = self._recorders.get(tenant)
        if recorder is None:
            validate_tenant(tenant)
            with self._create_lock, _unavailable_on_failure():
                recorder = self._recorders.get(tenant) or self._create_partition(tenant)
                self._recorders[tenant] = recorder
        return recorder

    def _create_partition(self, tenant: str) -> SQLiteApplicationRecorder:
        table = events_table(tenant)
        recorder = SQLiteApplicationRecorder(self._datastore, events_table_name=table)
        recorder.create_table()
        self._ensure_registry()
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(f"INSERT OR IGNORE INTO {_REGISTRY} (tenant) VALUES (?)", (tenant,))
        return recorder

    def _ensure_registry(self) -> None:
        if not self._registry_ready:
            with self._datastore.transaction(commit=True) as cursor:
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {_REGISTRY} (tenant TEXT PRIMARY KEY)")
            self._registry_ready = True

    def _head_hashes(
        self, recorder: SQLiteApplicationRecorder, heads: list[Head]
    ) -> dict[Head, str]:
        """The hash each existing head chains its successor over (missing heads are absent)."""
        condition = " OR ".join(["(originator_id=? AND originator_version=?)"] * len(heads))
        params = [value for stream_id, seq in heads for value in (stream_id.hex, seq)]
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT originator_id, originator_version, substr(state, -{codec.SEAL_LEN}) "
                f"FROM {recorder.events_table_name} WHERE {condition}",
                params,
            )
            rows = cursor.fetchall()
        found = {}
        for row in rows:
            stream_id = codec.as_uuid(row[0])
            found[(stream_id, row[1])] = codec.chain_over(stream_id, bytes(row[2]))
        return found

    def _insert(
        self, recorder: SQLiteApplicationRecorder, events: list[StoredEvent]
    ) -> Sequence[int] | None:
        return recorder.insert_events(events)

    def _unavailable_on_failure(self) -> AbstractContextManager[None]:
        return _unavailable_on_failure()  # the module's function, below


@contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    """The library's connection and locking failures become StoreUnavailable."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        raise StoreUnavailable(f"SQLite event store unavailable: {error}") from error
