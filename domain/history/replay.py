"""Replay: rebuild an execution from its history and re-decide every step.

Outside facts (an effect's answer or failure, a timer firing, a signal, a child's end,
a cancel) are taken from history and fed to the same commands the engine called;
everything the orchestrator decides in response must equal what history recorded.
Nothing outside is called: effect results come from the events themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from domain.definition import Graph
from domain.events import (
    ChildEnded,
    EffectDiscarded,
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
    SignalReceived,
    event_data,
    event_type,
)
from domain.execution import EXECUTION_TIMEOUT, Execution


class Divergence(msgspec.Struct, frozen=True):
    seq: int
    expected: dict[str, object] | None
    decided: dict[str, object] | None
    reason: str


class ReplayReport(msgspec.Struct, frozen=True):
    events: int
    divergence: Divergence | None = None

    @property
    def deterministic(self) -> bool:
        return self.divergence is None


def replay(execution_id: str, graph: Graph, history: Sequence[Event]) -> ReplayReport:
    if not history or not isinstance(history[0], ExecutionStarted):
        return ReplayReport(
            len(history), Divergence(1, None, None, "history does not start with ExecutionStarted")
        )
    execution, decided = Execution.start(execution_id, graph, history[0])
    position = 0  # index in history of the next event to check
    while True:
        divergence = _compare(history, position, decided)
        if divergence is not None:
            return ReplayReport(len(history), divergence)
        position += len(decided)
        if position >= len(history):
            return ReplayReport(len(history))
        fact = history[position]
        try:
            next_decisions = take_outside_fact(execution, fact)
        except Exception as exc:  # the fact does not fit the state the code reached
            return ReplayReport(
                len(history),
                Divergence(
                    position + 1,
                    _describe(fact),
                    None,
                    f"history has an event the code did not expect: {exc}",
                ),
            )
        if next_decisions is None:
            return ReplayReport(
                len(history),
                Divergence(
                    position + 1,
                    _describe(fact),
                    None,
                    "the code decided nothing where history has this event",
                ),
            )
        decided = next_decisions


def take_outside_fact(execution: Execution, fact: Event) -> list[Event] | None:
    """Feed one recorded outside fact to the command the engine used; None if it is not one."""
    at, actor = fact.at, fact.actor
    if (
        execution.yielded
        and isinstance(fact, NodeExecuting | NodeSkipped)
        and fact.element == execution.stack[-1]
    ):
        # The engine went on with a run of pure elements it had paused for others.
        return execution.advance(at, actor)
    timers = dict(execution.timers())
    match fact:
        case ExecutionCancelled(reason=reason):
            return execution.cancel(at, actor, reason)
        case ExecutionFailed() if EXECUTION_TIMEOUT in timers:
            return execution.fire_timer(EXECUTION_TIMEOUT, at, actor)
        case SignalReceived(name=name, data=data):
            return execution.signal(name, data, at, actor, fact.idempotency_key, fact.request_hash)
        case NodeFailed(element=key) if key in timers:
            return execution.fire_timer(key, at, actor)  # a signal's wait timed out
        case ChildEnded(element=key, attempt=attempt, index=index, status=status):
            return execution.child_ended(
                key, attempt, index, status, fact.output, fact.error, at, actor
            )
        case EffectDiscarded(element=key, attempt=attempt, output=output, error=error):
            return execution.discard(key, attempt, output, error, at, actor)
        case NodeExecuting(element=key) if key in timers:
            return execution.fire_timer(key, at, actor)
        case NodeCompleted(element=key) if key in timers:
            return execution.fire_timer(key, at, actor)
        case NodeCompleted(element=key, attempt=attempt, output=output):
            return execution.complete(key, attempt, output, at, actor)
        case NodeFailed(element=key, attempt=attempt, error=error):
            return execution.fail(key, attempt, error, at, actor)
    return None


def _compare(history: Sequence[Event], start: int, decided: list[Event]) -> Divergence | None:
    for offset, event in enumerate(decided):
        index = start + offset
        if index >= len(history):
            # History ends while the code goes on: an execution caught mid-flight (its
            # engine stopped before recording the rest) is not a divergence.
            return None
        recorded = history[index]
        # Decisions carry the `at` and `actor` of the fact that caused them, so a
        # deterministic step equals its record field for field; only a mismatch pays
        # for the canonical comparison, which ignores the envelope.
        if recorded != event and _key(recorded) != _key(event):
            return Divergence(
                index + 1, _describe(recorded), _describe(event), "the decision differs"
            )
    return None


def _key(event: Event) -> tuple[str, bytes]:
    data = event_data(event)
    return event_type(event), msgspec.json.encode(data, order="sorted")


def _describe(event: Event) -> dict[str, object]:
    return {"type": event_type(event), **event_data(event)}
