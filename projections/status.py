"""The execution status document (the contract's GET …/status), a pure fold of events.

It needs no definition: every field comes from the events themselves, so the
projector, the gateway's snapshot and a rebuild all agree.

The document encodes as it always has: every field is there, `null` or not,
except the few that only appear once something happened (`input` once the
execution started, `failed_element` once it failed; a node's `port` once it
completed, `wake_at` while it waits on a timer, `retry_at` while it waits to be
tried again, `timeout_at` while a `signal` element waits with a timeout): those
are UNSET until then, and an UNSET field is left out.
A listed execution (GET /executions) is the summary: the document without its
nodes and input, which come last in the whole one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

import msgspec
from msgspec import UNSET, UnsetType

from domain.children import child_id, is_spawn_request
from domain.events import (
    ChildEnded,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
    NodeWaiting,
)
from domain.ports import ExecutionState

NodeState = Literal["pending", "running", "waiting", "completed", "failed", "skipped", "cancelled"]


class NodeStatus(msgspec.Struct, kw_only=True):
    """One element's part of the document."""

    state: NodeState
    output: Any
    error: str | None
    attempts: int
    started_at: str | None
    completed_at: str | None
    port: str | UnsetType = UNSET
    wake_at: str | UnsetType = UNSET
    retry_at: str | UnsetType = UNSET
    timeout_at: str | UnsetType = UNSET  # while a `signal` element waits with a timeout
    signal: str | UnsetType = UNSET  # the name a `signal` element waits (or waited) for
    # A subprocess's child, or the children a foreach has started so far, in item order,
    # of how many items (the current attempt's).
    child_execution_id: str | UnsetType = UNSET
    child_execution_ids: list[str] | UnsetType = UNSET
    items: int | UnsetType = UNSET


class ParentLink(msgspec.Struct, kw_only=True):
    """The element of the execution that started this one."""

    execution_id: str
    element: str


class ExecutionTrigger(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What started an execution: a caller of the API, a webhook or schedule (by its key
    and, for a tick, its time), a re-run, or a parent execution."""

    type: Literal["api", "webhook", "schedule", "rerun", "parent"]
    key: str | None = None
    at: str | None = None


class ExecutionSummary(msgspec.Struct, kw_only=True):
    """An execution as GET /executions lists it: its status without the nodes and the input."""

    execution_id: str
    process_id: str | None
    version: int | None
    status: ExecutionState
    output: Any
    error: str | None
    position: int
    started_at: str | None
    finished_at: str | None
    started_by: str | None
    rerun_of: str | None
    from_: str | None = msgspec.field(name="from")
    failed_element: str | UnsetType | None = UNSET
    trigger: ExecutionTrigger | UnsetType = UNSET  # UNSET only in documents saved before it
    parent: ParentLink | None = None


class ExecutionStatus(ExecutionSummary, kw_only=True):
    """The whole document: the summary, the execution's input and each of its elements."""

    nodes: dict[str, NodeStatus]
    input: Any | UnsetType = UNSET


def empty_status(execution_id: str) -> ExecutionStatus:
    """The document before any event: pending, nothing known."""
    return ExecutionStatus(
        execution_id=execution_id,
        process_id=None,
        version=None,
        status="pending",
        nodes={},
        output=None,
        error=None,
        position=0,
        started_at=None,
        finished_at=None,
        started_by=None,
        rerun_of=None,
        from_=None,
    )


def _trigger_of(event: ExecutionStarted) -> ExecutionTrigger:
    if event.trigger is not None:
        return msgspec.convert(event.trigger, ExecutionTrigger)
    return ExecutionTrigger(type="rerun" if event.rerun_of else "api")


def _node() -> NodeStatus:
    return NodeStatus(
        state="pending", output=None, error=None, attempts=0, started_at=None, completed_at=None
    )


def fold_status(doc: ExecutionStatus, seq: int, event: Event) -> ExecutionStatus:
    """Apply one event (the execution's `seq`-th) to the document, in place; idempotent by seq."""
    if seq <= doc.position:
        return doc
    doc.position = seq
    nodes = doc.nodes
    match event:
        case ExecutionStarted():
            doc.process_id = event.process_id
            doc.version = event.version
            doc.status = "running"
            doc.started_at = event.at
            doc.started_by = event.actor
            doc.rerun_of = event.rerun_of
            doc.input = event.input
            doc.from_ = event.from_element
            doc.trigger = _trigger_of(event)
            if event.parent is not None:
                doc.parent = ParentLink(
                    execution_id=event.parent.execution_id, element=event.parent.element
                )
        case NodeExecuting(element=key, attempt=attempt):
            node = nodes.setdefault(key, _node())
            node.state, node.attempts, node.error = "running", attempt, None
            if node.started_at is None:
                node.started_at = event.at
            if event.wake_at is not None:
                node.wake_at = event.wake_at
            if is_spawn_request(event.input):
                _link_children(doc.execution_id, key, attempt, node, event.input)
        case NodeWaiting(element=key, attempt=attempt):
            node = nodes.setdefault(key, _node())
            node.state, node.attempts, node.started_at = "waiting", attempt, event.at
            if event.name is not None:
                node.signal = event.name
            if event.timeout_at is not None:
                node.timeout_at = event.timeout_at
        case NodeCompleted(element=key):
            node = nodes.setdefault(key, _node())
            node.state, node.output, node.completed_at = "completed", event.output, event.at
            node.port = event.port
            node.wake_at = node.retry_at = node.timeout_at = UNSET
        case NodeFailed(element=key):
            node = nodes.setdefault(key, _node())
            node.error, node.attempts = event.error, event.attempt
            if event.retry_at is None:
                node.state, node.completed_at = "failed", event.at
                node.retry_at = node.timeout_at = UNSET
            else:
                node.retry_at = event.retry_at
        case ChildEnded(element=key):
            _link_next_child(doc.execution_id, nodes.setdefault(key, _node()), event)
        case NodeSkipped(element=key):
            nodes.setdefault(key, _node()).state = "skipped"
        case ExecutionCompleted(output=output):
            doc.status, doc.output, doc.finished_at = "completed", output, event.at
        case ExecutionFailed(error=error, element=element):
            doc.status, doc.error, doc.finished_at = "failed", error, event.at
            doc.failed_element = element
            _stop_running(nodes)
        case ExecutionCancelled():
            doc.status, doc.finished_at = "cancelled", event.at
            _stop_running(nodes)
    return doc


def _link_children(
    execution_id: str, key: str, attempt: int, node: NodeStatus, request: dict[str, Any]
) -> None:
    total = len(request["items"])
    if not request["each"]:
        node.child_execution_id = child_id(execution_id, key, attempt, 0)
        return
    launched = min(total, request["concurrency"])
    node.items = total
    node.child_execution_ids = [child_id(execution_id, key, attempt, i) for i in range(launched)]


def _link_next_child(execution_id: str, node: NodeStatus, event: ChildEnded) -> None:
    # As the aggregate does (domain.children.Children.end): each completed child lets
    # the next item's start, a failed one stops them.
    ids = node.child_execution_ids
    if (
        isinstance(ids, list)
        and isinstance(node.items, int)
        and event.attempt == node.attempts
        and event.status == "completed"
        and len(ids) < node.items
    ):
        ids.append(child_id(execution_id, event.element, event.attempt, len(ids)))


def _stop_running(nodes: dict[str, NodeStatus]) -> None:
    # An execution that ended stopped whatever was still waiting or in flight.
    for node in nodes.values():
        if node.state in ("running", "waiting"):
            node.state = "cancelled"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ExecutionStatus)

StatusRow = tuple[str, str | None, str, str, int, bytes]
"""A document as a store keeps it: execution_id, process_id, status, started_at (""
before the start), position, and the whole document encoded."""


def status_row(doc: ExecutionStatus) -> StatusRow:
    """The document as stored: its queried fields beside the whole of it, encoded.

    A snapshot: the document may go on changing once this has returned.
    """
    return (
        doc.execution_id,
        doc.process_id,
        doc.status,
        doc.started_at or "",
        doc.position,
        _encoder.encode(doc),
    )


def copy_status(doc: ExecutionStatus) -> ExecutionStatus:
    """A deep copy of the document (what the projector hands out of its memory)."""
    return _decoder.decode(_encoder.encode(doc))


class StatusQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which documents a list asks for, newest first by (started_at, execution_id)."""

    process_id: str | None = None
    status: str | None = None
    limit: int = 50
    # The (started_at, execution_id) of the last document seen: only older ones follow.
    before: tuple[str, str] | None = None


ExecutionIds = list[str]  # named: inside StatusStore, `list` is its method


class StatusStore(Protocol):
    """Where the status documents are kept (the read model's port; adapters in
    infra.readmodel.status_store). Here rather than in domain.ports: it speaks in
    this module's documents, and the domain imports no projection. Calls block."""

    def save(self, tenant: str, rows: Sequence[StatusRow], position: int | None = None) -> None:
        """Upsert `status_row`s (a row only wins with a higher position) and the tenant's
        tracked store position, in one transaction."""
        ...

    def get(self, tenant: str, execution_id: str) -> ExecutionStatus | None: ...

    def list(self, tenant: str, query: StatusQuery) -> list[ExecutionSummary]: ...

    def running(self, tenant: str) -> ExecutionIds:
        """The ids of the executions not finished (running or pending)."""
        ...

    def tracking(self, tenant: str) -> int:
        """The last store position folded into the tenant's documents (0: none)."""
        ...

    def reset(self, tenant: str) -> None:
        """Forget the tenant's documents and position (before a rebuild)."""
        ...

    def close(self) -> None: ...
