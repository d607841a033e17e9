"""How the tools read: a tenant's executions and their histories, straight from the event store.

Reading never creates anything: a tenant without a partition, an id that is not
a UUID, another tenant's execution and a stream that is not an execution are
all "not found", exactly as for an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol
from uuid import UUID

import msgspec

from domain.definition import Graph
from domain.errors import DomainError
from domain.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
)
from domain.ports import EXECUTION_STATES, EventStore, RecordedEvent
from domain.process import Process
from infra.store import codec
from infra.store.naming import validate_tenant
from services.usecases.catalog import DefinitionCatalog, UnknownProcess

STATUSES = EXECUTION_STATES
_LIFECYCLE = ("ExecutionStarted", "ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled")


class ToolError(Exception):
    """Bad input or nothing found: the message is for the user, the command exits 2."""


class StateReader(Protocol):
    """What the store adapters offer beyond the EventStore port: events undecoded."""

    def read_states(self, tenant: str, stream_id: UUID) -> list[tuple[int, bytes]]: ...

    def read_all_states(
        self, tenant: str, *, after: int = 0, limit: int = 1000, topics: Sequence[str] = ()
    ) -> list[codec.StoredState]: ...


class ExecutionSummary(msgspec.Struct, kw_only=True):
    """One line of `loom executions`: the execution's lifecycle, from its lifecycle events."""

    execution_id: str
    process_id: str
    version: int
    status: str
    started_at: str
    started_by: str
    finished_at: str | None = None
    error: str | None = None
    rerun_of: str | None = None


class Histories:
    """Executions and their definitions, as recorded in one event store (blocking calls)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._catalog = DefinitionCatalog(store)
        self._processes: dict[tuple[str, str], Process] = {}
        self._tenants: set[str] | None = None

    def check_tenant(self, tenant: str) -> bool:
        """Whether the tenant has a partition; raises ToolError if the id is not valid."""
        try:
            validate_tenant(tenant)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        if self._tenants is None:
            self._tenants = set(self.store.tenants())
        return tenant in self._tenants

    def events(self, tenant: str, execution_id: str) -> list[RecordedEvent]:
        """The execution's events in order, or ToolError (not found)."""
        stream = self._stream(tenant, execution_id)
        try:
            history = self.store.read(tenant, stream)
        except msgspec.DecodeError as exc:
            raise ToolError(
                f"a stored event of execution {execution_id} cannot be read ({exc}): "
                f"`loom audit --verify --tenant {tenant} {execution_id}` names it"
            ) from None
        if not history or not isinstance(history[0].event, ExecutionStarted):
            raise ToolError(f"execution {execution_id} not found in tenant {tenant}")
        return history

    def states(self, tenant: str, execution_id: str) -> list[tuple[int, bytes]]:
        """The execution's stored states (seq, sealed JSON) undecoded, or ToolError."""
        stream = self._stream(tenant, execution_id)
        rows = state_reader(self.store).read_states(tenant, stream)
        if not rows or rows[0][0] != 1 or not _is_started(rows[0][1]):
            raise ToolError(f"execution {execution_id} not found in tenant {tenant}")
        return rows

    def graph(self, tenant: str, started: ExecutionStarted, version: int | None = None) -> Graph:
        """The compiled graph of the execution's process, at `version` (default: its own)."""
        process = self.process(tenant, started.process_id)
        chosen = started.version if version is None else version
        try:
            return self._catalog.graph_of(tenant, process, chosen)
        except UnknownProcess:
            raise ToolError(f"process {started.process_id} has no version {chosen}") from None
        except DomainError as exc:  # a definition today's code no longer compiles
            raise ToolError(
                f"process {started.process_id} v{chosen} does not compile: {exc.detail}"
            ) from None

    def process(self, tenant: str, process_id: str) -> Process:
        key = (tenant, process_id)
        if key not in self._processes:
            try:
                self._processes[key] = self._catalog.load(tenant, process_id)
            except UnknownProcess:
                raise ToolError(f"process {process_id} not found in tenant {tenant}") from None
        return self._processes[key]

    def executions(self, tenant: str, *, batch: int = 5000) -> Iterator[ExecutionSummary]:
        """Every execution of the tenant in the order they started, from lifecycle events only."""
        if not self.check_tenant(tenant):
            return
        summaries: dict[UUID, ExecutionSummary] = {}
        after = 0
        while True:
            rows = state_reader(self.store).read_all_states(
                tenant, after=after, limit=batch, topics=_LIFECYCLE
            )
            if not rows:
                break
            after = rows[-1].position
            for row in rows:
                _fold_summary(summaries, row.stream_id, codec.decode(row.state))
        yield from summaries.values()

    def _stream(self, tenant: str, execution_id: str) -> UUID:
        try:
            stream = UUID(execution_id)
        except ValueError:
            raise ToolError(f"execution {execution_id} not found in tenant {tenant}") from None
        if not self.check_tenant(tenant):
            raise ToolError(f"execution {execution_id} not found in tenant {tenant}")
        return stream


def _fold_summary(summaries: dict[UUID, ExecutionSummary], stream: UUID, event: Event) -> None:
    if isinstance(event, ExecutionStarted):
        summaries[stream] = ExecutionSummary(
            execution_id=str(stream),
            process_id=event.process_id,
            version=event.version,
            status="running",
            started_at=event.at,
            started_by=event.actor,
            rerun_of=event.rerun_of,
        )
        return
    summary = summaries.get(stream)
    if summary is None:
        return
    summary.finished_at = event.at
    match event:
        case ExecutionCompleted():
            summary.status = "completed"
        case ExecutionFailed(error=error):
            summary.status, summary.error = "failed", error
        case ExecutionCancelled():
            summary.status = "cancelled"


def _is_started(state: bytes) -> bool:
    try:
        return isinstance(codec.decode(state), ExecutionStarted)
    except msgspec.DecodeError:
        return True  # an execution whose first event was damaged: let the chain say where


def state_reader(store: Any) -> StateReader:
    """The store as a StateReader (the SQLite and PostgreSQL adapters are)."""
    if not hasattr(store, "read_states"):
        raise ToolError("this event store cannot hand out its stored states")
    reader: StateReader = store
    return reader
