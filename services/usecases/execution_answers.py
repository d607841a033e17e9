"""What the execution use cases answer: the shapes the API sends (and documents)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.ports import ExecutionState
from projections.status import ExecutionSummary


class ExecutionOut(msgspec.Struct, kw_only=True):
    """What a start or a cancel answers: the execution and its status right after."""

    execution_id: str
    status: ExecutionState


class RerunOut(ExecutionOut, kw_only=True):
    """What a rerun answers: the new execution, the one it reruns and where from."""

    rerun_of: str
    from_: str = msgspec.field(name="from")


class ExecutionPage(msgspec.Struct, kw_only=True):
    """A page of GET /executions, newest first; `next_cursor` is null on the last."""

    items: list[ExecutionSummary]
    next_cursor: str | None


class EventOut(msgspec.Struct, kw_only=True):
    """One recorded event of an execution, as GET …/events lists it."""

    seq: int
    type: str
    at: str
    actor: str
    element: str | None
    data: dict[str, Any]


class StateEventOut(msgspec.Struct, kw_only=True):
    seq: int
    type: str
    at: str
    actor: str
    element: str | None


class StateNodeOut(msgspec.Struct, kw_only=True):
    state: str
    attempts: int
    output: Any
    port: str | None
    error: str | None
    wake_at: str | None


class InFlightOut(msgspec.Struct, kw_only=True):
    element: str
    attempt: int
    request: Any


class TimerOut(msgspec.Struct, kw_only=True):
    element: str
    wake_at: str


class StateOut(msgspec.Struct, kw_only=True):
    """GET …/state: the execution as it stood after its event `at` (domain.history.state_at)."""

    execution_id: str
    at: int
    events: int
    event: StateEventOut
    status: ExecutionState
    stack: list[str]
    nodes: dict[str, StateNodeOut]
    outputs: dict[str, Any]
    output: Any
    error: str | None
    in_flight: list[InFlightOut]
    timers: list[TimerOut]
