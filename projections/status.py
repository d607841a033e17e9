"""The execution status document (the contract's GET …/status), a pure fold of events.

It needs no definition: every field comes from the events themselves, so the
projector, the gateway's snapshot and a rebuild all agree.
"""

from __future__ import annotations

from typing import Any

from domain.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
)

StatusDoc = dict[str, Any]
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def empty_status(execution_id: str) -> StatusDoc:
    return {
        "execution_id": execution_id,
        "process_id": None,
        "version": None,
        "status": "pending",
        "nodes": {},
        "output": None,
        "error": None,
        "position": 0,
        "started_at": None,
        "finished_at": None,
        "started_by": None,
        "rerun_of": None,
        "from": None,
    }


def fold_status(doc: StatusDoc, seq: int, event: Event) -> StatusDoc:
    """Apply one event (the execution's `seq`-th) to the document, in place; idempotent by seq."""
    if seq <= doc["position"]:
        return doc
    doc["position"] = seq
    nodes: dict[str, Any] = doc["nodes"]
    match event:
        case ExecutionStarted():
            doc.update(
                process_id=event.process_id,
                version=event.version,
                status="running",
                started_at=event.at,
                started_by=event.actor,
                rerun_of=event.rerun_of,
                input=event.input,
            )
            doc["from"] = event.from_element
        case NodeExecuting(element=key, attempt=attempt):
            node = nodes.setdefault(key, _node())
            node.update(state="running", attempts=attempt, error=None)
            if node["started_at"] is None:
                node["started_at"] = event.at
            if event.wake_at is not None:
                node["wake_at"] = event.wake_at
        case NodeCompleted(element=key):
            node = nodes.setdefault(key, _node())
            node.update(
                state="completed", output=event.output, completed_at=event.at, port=event.port
            )
            node.pop("wake_at", None)
            node.pop("retry_at", None)
        case NodeFailed(element=key):
            node = nodes.setdefault(key, _node())
            node.update(error=event.error, attempts=event.attempt)
            if event.retry_at is None:
                node.update(state="failed", completed_at=event.at)
                node.pop("retry_at", None)
            else:
                node["retry_at"] = event.retry_at
        case NodeSkipped(element=key):
            nodes.setdefault(key, _node())["state"] = "skipped"
        case ExecutionCompleted(output=output):
            doc.update(status="completed", output=output, finished_at=event.at)
        case ExecutionFailed(error=error, element=element):
            doc.update(status="failed", error=error, failed_element=element, finished_at=event.at)
            _stop_running(nodes)
        case ExecutionCancelled():
            doc.update(status="cancelled", finished_at=event.at)
            _stop_running(nodes)
    return doc


def _stop_running(nodes: dict[str, Any]) -> None:
    # An execution that ended stopped whatever was still waiting or in flight.
    for node in nodes.values():
        if node["state"] == "running":
            node["state"] = "cancelled"


def _node() -> dict[str, Any]:
    return {
        "state": "pending",
        "output": None,
        "error": None,
        "attempts": 0,
        "started_at": None,
        "completed_at": None,
    }
