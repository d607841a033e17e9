"""What-if: the recorded outside facts of an execution, replayed through another definition.

Two executions are walked side by side: the original, with its own definition,
tells which recorded events are outside facts (effect answers, timer firings, a
cancel, the timeout); the other, with the new definition, is fed each fact that
fits it (an answer only to the same element, attempt and request). Nothing
outside is called: an effect the new path starts and history never answered is
listed as "would run", with the request it would send, and is not performed.
`parting` is where the paths part: the first event the new definition decides
differently (`replay` with the new graph).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from domain.definition import Graph
from domain.errors import DomainError
from domain.events import (
    EffectDiscarded,
    Event,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
)
from domain.execution import EXECUTION_TIMEOUT, Execution

# The one place that knows which command each kind of outside fact goes to; shared
# so that a new kind of fact reaches what-if the day it reaches replay.
from domain.history.replay import Divergence, replay, take_outside_fact


class WhatIfRefused(DomainError):
    """The history cannot be compared (it does not start with ExecutionStarted)."""


RAN = frozenset({"running", "completed", "failed"})


class Reached(msgspec.Struct, frozen=True, kw_only=True):
    """An element as the new path leaves it."""

    key: str
    state: str  # in the new path
    history: str  # its state in history ("absent" when the recorded definition lacks it)
    output: Any = None
    port: str | None = None  # the port it left by
    request: Any = None  # an effect that would run: what it would send
    note: str | None = None


class WhatIfReport(msgspec.Struct, frozen=True, kw_only=True):
    execution_id: str
    against: str  # what the history was replayed through
    parting: Divergence | None  # None: the new definition decides exactly what history holds
    status: str  # the new path's status once every recorded fact is fed
    would_run: list[Reached]
    would_not_run: list[Reached]
    differs: list[Reached]  # ran on both paths with another outcome
    undecided: list[Reached]  # ran in history; the new path waits on an effect before it
    facts: int  # recorded outside facts
    facts_used: int  # of them, those the new path took
    stopped_at: int | None = None  # history stops replaying under its own definition here

    @property
    def same_path(self) -> bool:
        return self.parting is None and not (self.would_run or self.would_not_run or self.differs)


def compare(
    execution_id: str, recorded: Graph, graph: Graph, history: Sequence[Event], against: str
) -> WhatIfReport:
    """The what-if of one history: pure, no store (see the module docstring)."""
    parting = replay(execution_id, graph, history).divergence
    original, decided = Execution.start(execution_id, recorded, _as_started(history[0]))
    other, _ = Execution.start(execution_id, graph, _as_started(history[0]))
    position, facts, used, stopped_at = len(decided), 0, 0, None
    waiting: list[tuple[Event, dict[str, Any]]] = []  # facts that did not fit the new path yet
    while position < len(history):
        fact = history[position]
        context = _context(original, fact)
        try:
            taken = take_outside_fact(original, fact)
        except DomainError:
            taken = None
        if taken is None:  # history does not replay under its own definition
            stopped_at = position + 1
            break
        position += len(taken)
        facts += 1
        if isinstance(fact, ExecutionCancelled | ExecutionFailed):
            used += _feed_all(other, waiting)  # what arrived before the end still counts
        if _feed(other, fact, context):
            used += 1 + _feed_all(other, waiting)
        elif not isinstance(fact, EffectDiscarded):
            waiting.append((fact, context))
    report = _report(execution_id, against, parting, original, other, facts, used)
    return msgspec.structs.replace(report, stopped_at=stopped_at)


def _as_started(event: Event) -> ExecutionStarted:
    if not isinstance(event, ExecutionStarted):
        raise WhatIfRefused("the history does not start with ExecutionStarted")
    return event


def _context(original: Execution, fact: Event) -> dict[str, Any]:
    """What the original knew of a fact before taking it: timer or answer, and the request."""
    key = getattr(fact, "element", None)
    run = original.nodes.get(key) if key is not None else None
    return {
        "timer": key is not None and key in dict(original.timers()),
        "request": None if run is None else run.request,
    }


def _feed_all(other: Execution, waiting: list[tuple[Event, dict[str, Any]]]) -> int:
    """Feed the waiting facts that fit now, until none does; how many were taken."""
    taken, progress = 0, True
    while progress:
        progress = False
        for item in list(waiting):
            if _feed(other, *item):
                waiting.remove(item)
                taken += 1
                progress = True
    return taken


def _feed(other: Execution, fact: Event, context: dict[str, Any]) -> bool:
    """Give one recorded fact to the new path if it fits there; whether it did."""
    if other.finished:
        return False
    timers = dict(other.timers())
    try:
        match fact:
            case ExecutionCancelled(reason=reason):
                other.cancel(fact.at, fact.actor, reason)
            case ExecutionFailed() if EXECUTION_TIMEOUT in timers:
                other.fire_timer(EXECUTION_TIMEOUT, fact.at, fact.actor)
            case NodeExecuting(element=key) | NodeCompleted(element=key) if context["timer"]:
                if key not in timers:
                    return False
                other.fire_timer(key, fact.at, fact.actor)
            case NodeCompleted(element=key, attempt=attempt, output=output):
                if not _same_call(other, key, attempt, context["request"]):
                    return False
                other.complete(key, attempt, output, fact.at, fact.actor)
            case NodeFailed(element=key, attempt=attempt, error=error):
                if not _same_call(other, key, attempt, context["request"]):
                    return False
                other.fail(key, attempt, error, fact.at, fact.actor)
            case _:
                return False
    except DomainError:
        return False
    return True


def _same_call(other: Execution, key: str, attempt: int, request: Any) -> bool:
    """Whether the new path has this very call in flight: same element, attempt and request."""
    return any(
        k == key and a == attempt and _canonical(r) == _canonical(request)
        for k, a, r in other.in_flight()
    )


def _canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def _report(
    execution_id: str,
    against: str,
    parting: Divergence | None,
    original: Execution,
    other: Execution,
    facts: int,
    used: int,
) -> WhatIfReport:
    would_run: list[Reached] = []
    would_not_run: list[Reached] = []
    differs: list[Reached] = []
    undecided: list[Reached] = []
    in_flight = {key: request for key, _, request in other.in_flight()}
    for key, run in other.nodes.items():
        before = original.nodes.get(key)
        history = "absent" if before is None else before.state
        reached = Reached(
            key=key,
            state=run.state,
            history=history,
            output=run.output if run.state == "completed" else None,
            port=run.port,
            request=in_flight.get(key),
            note=_note(run.state, run.error, key in in_flight),
        )
        if key in in_flight:
            if not _same_wait(before, run, in_flight[key]):
                would_run.append(reached)
        elif run.state in RAN and history not in RAN:
            would_run.append(reached)
        elif run.state in RAN and before is not None and _outcome(run) != _outcome(before):
            differs.append(reached)
        elif run.state == "skipped" and history in RAN:
            would_not_run.append(reached)
        elif run.state == "pending" and history in RAN:
            undecided.append(reached)
    for key, before in original.nodes.items():
        if key not in other.nodes and before.state in RAN:
            would_not_run.append(Reached(key=key, state="absent", history=before.state))
    return WhatIfReport(
        execution_id=execution_id,
        against=against,
        parting=parting,
        status=other.status,
        would_run=would_run,
        would_not_run=would_not_run,
        differs=differs,
        undecided=undecided,
        facts=facts,
        facts_used=used,
    )


def _same_wait(before: Any, run: Any, request: Any) -> bool:
    """Whether history, too, ended waiting on this very call (an execution still running)."""
    return (
        before is not None
        and before.state == "running"
        and before.attempts == run.attempts
        and _canonical(before.request) == _canonical(request)
    )


def _note(state: str, error: str | None, effect: bool) -> str | None:
    if effect:
        return "an effect: not performed; history holds no answer to this request"
    if state == "running":
        return "waiting on a timer history never fired"
    if state == "failed":
        return f"fails: {error}"
    return None


def _outcome(run: Any) -> tuple[str, bytes, str | None, str | None]:
    return (run.state, _canonical(run.output), run.port, run.error)
