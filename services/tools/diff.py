"""`loom diff`: two executions lined up element by element, and the first event that differs.

Each side is the status fold of its own events (`projections.status`), so no
definition is needed and executions of different versions, or a rerun and its
original, compare alike. Timing is shown, never counted as a difference: two
runs never take the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from domain.clock import parse_iso
from domain.events import Event, ExecutionStarted, event_data, event_type
from domain.ports import RecordedEvent
from projections.status import empty_status, fold_status

COMPARED = ("state", "output", "attempts", "error", "port")
_ABSENT = {"state": "absent", "output": None, "attempts": 0, "error": None, "port": None}
# Fields of ExecutionStarted that name a run rather than decide it (the version is in
# the header: two versions that decide alike are the same path).
_PER_RUN = ("version", "idempotency_key", "request_hash", "rerun_of", "from_element", "reused")


class ElementDiff(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    left: dict[str, Any] | None  # None: the element never appears in that execution
    right: dict[str, Any] | None
    differs: list[str]  # the compared fields that differ

    @property
    def same(self) -> bool:
        return not self.differs


class EventDivergence(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    left: dict[str, Any] | None  # None: that history ends before
    right: dict[str, Any] | None


class DiffReport(msgspec.Struct, frozen=True, kw_only=True):
    left: dict[str, Any]  # the execution's header: id, process, version, status, events
    right: dict[str, Any]
    elements: list[ElementDiff]
    first_divergence: EventDivergence | None

    @property
    def same(self) -> bool:
        return self.first_divergence is None and all(e.same for e in self.elements)


def diff(
    left_id: str,
    left: Sequence[RecordedEvent],
    right_id: str,
    right: Sequence[RecordedEvent],
) -> DiffReport:
    left_doc, right_doc = _fold(left_id, left), _fold(right_id, right)
    keys = list(dict.fromkeys([*left_doc["nodes"], *right_doc["nodes"]]))
    elements = [
        _element(key, left_doc["nodes"].get(key), right_doc["nodes"].get(key)) for key in keys
    ]
    return DiffReport(
        left=_header(left_doc, len(left)),
        right=_header(right_doc, len(right)),
        elements=elements,
        first_divergence=_first_divergence(left, right),
    )


def _fold(execution_id: str, history: Sequence[RecordedEvent]) -> dict[str, Any]:
    doc = empty_status(execution_id)
    for recorded in history:
        fold_status(doc, recorded.seq, recorded.event)
    folded: dict[str, Any] = msgspec.to_builtins(doc)  # the document as the API sends it
    return folded


def _header(doc: dict[str, Any], events: int) -> dict[str, Any]:
    return {
        "execution_id": doc["execution_id"],
        "process_id": doc["process_id"],
        "version": doc["version"],
        "status": doc["status"],
        "started_by": doc["started_by"],
        "events": events,
        "duration_s": _duration(doc["started_at"], doc["finished_at"]),
    }


def _element(key: str, left: dict[str, Any] | None, right: dict[str, Any] | None) -> ElementDiff:
    sides = [None if node is None else _side(node) for node in (left, right)]
    a, b = (_ABSENT if side is None else side for side in sides)
    differs = [f for f in COMPARED if _canonical(a[f]) != _canonical(b[f])]
    return ElementDiff(key=key, left=sides[0], right=sides[1], differs=differs)


def _side(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": node["state"],
        "output": node.get("output"),
        "attempts": node.get("attempts", 0),
        "error": node.get("error"),
        "port": node.get("port"),
        "started_at": node.get("started_at"),
        "completed_at": node.get("completed_at"),
        "duration_s": _duration(node.get("started_at"), node.get("completed_at")),
    }


def _duration(started: str | None, finished: str | None) -> float | None:
    if started is None or finished is None:
        return None
    return round(parse_iso(finished) - parse_iso(started), 6)


def _first_divergence(
    left: Sequence[RecordedEvent], right: Sequence[RecordedEvent]
) -> EventDivergence | None:
    for index in range(max(len(left), len(right))):
        a = _decision(left[index].event) if index < len(left) else None
        b = _decision(right[index].event) if index < len(right) else None
        if a != b:
            return EventDivergence(seq=index + 1, left=a, right=b)
    return None


def _decision(event: Event) -> dict[str, Any]:
    """What an event says, without when, who, or the ids of its own run."""
    data = event_data(event)
    if isinstance(event, ExecutionStarted):
        for field in _PER_RUN:
            data.pop(field, None)
    return {"type": event_type(event), **msgspec.json.decode(_canonical(data))}


def _canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")
