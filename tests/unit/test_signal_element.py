"""The `signal` element: waits, durably, for a signal of its name; a pure fold of events."""

from __future__ import annotations

from typing import Any

import pytest

from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.errors import DefinitionInvalid, InvalidCommand
from domain.events import (
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionStarted,
    NodeCompleted,
    NodeFailed,
    NodeWaiting,
    SignalReceived,
)
from domain.execution import Execution
from domain.history.replay import replay
from domain.history.rerun import plan_rerun
from projections.status import empty_status, fold_status
from tests.support import definition, edge, el

T0 = "2024-05-01T09:00:00.000000Z"
ENGINE = "loom-engine"


def at(seconds: float) -> str:
    return iso(parse_iso(T0) + seconds)


def graph(*elements: dict[str, Any], connections: list[dict[str, Any]]) -> Graph:
    return compile_definition(parse_definition(definition((list(elements), connections))))


def approval(**params: Any) -> Graph:
    """start → approve (signal "approval") → done, the timeout caught by `late`."""
    return graph(
        el("start", "trigger"),
        el("approve", "signal", name="approval", **params),
        el("done", "end"),
        el("late", "end"),
        connections=[
            edge("start", "approve"),
            edge("approve", "done"),
            edge("approve", "late", "error"),
        ],
    )


def start(g: Graph, input: Any = None) -> tuple[Execution, list[Event]]:
    started = ExecutionStarted(at=T0, actor="alice", process_id="p", version=1, input=input)
    return Execution.start("ex-1", g, started)


def test_a_signal_element_parks_the_execution_waiting_with_its_timeout_recorded():
    execution, events = start(approval(timeout_s=60))

    assert events[-1] == NodeWaiting(
        at=T0, actor="alice", element="approve", name="approval", timeout_at=at(60)
    )
    assert not execution.finished
    assert execution.nodes["approve"].state == "waiting"
    assert execution.waiting() == [("approve", "approval")]
    assert execution.timers() == [("approve", at(60))]
    assert execution.in_flight() == []


def test_a_late_signal_completes_the_element_with_data_by_and_at_and_the_execution_ends():
    execution, _ = start(approval())

    events = execution.signal("approval", {"ok": True}, at(5), "bob")

    output = {"data": {"ok": True}, "by": "bob", "at": at(5)}
    assert events[0] == SignalReceived(at=at(5), actor="bob", name="approval", data={"ok": True})
    assert events[1] == NodeCompleted(at=at(5), actor="bob", element="approve", output=output)
    assert isinstance(events[-1], ExecutionCompleted)
    assert execution.output == {"done": output}


def test_a_signal_sent_before_the_element_is_reached_is_taken_when_it_is():
    g = graph(
        el("start", "trigger"),
        el("pause", "delay", seconds=10),
        el("approve", "signal", name="approval"),
        el("done", "end"),
        connections=[edge("start", "pause"), edge("pause", "approve"), edge("approve", "done")],
    )
    execution, _ = start(g)

    early = execution.signal("approval", "yes", at(1), "bob")
    assert early == [SignalReceived(at=at(1), actor="bob", name="approval", data="yes")]
    assert execution.untaken("approval") == early

    events = execution.fire_timer("pause", at(10), ENGINE)

    assert [type(e).__name__ for e in events] == [
        "NodeCompleted",
        "NodeWaiting",
        "NodeCompleted",
        "NodeExecuting",
        "NodeCompleted",
        "ExecutionCompleted",
    ]
    assert execution.output == {"done": {"data": "yes", "by": "bob", "at": at(1)}}
    assert execution.untaken("approval") == []


def test_two_signals_for_one_element_the_oldest_is_taken_and_the_other_stays_recorded():
    execution, _ = start(approval())

    execution.signal("approval", "first", at(1), "bob")

    assert execution.finished
    assert execution.output["done"]["data"] == "first"
    with pytest.raises(InvalidCommand, match="already completed"):
        execution.signal("approval", "second", at(2), "carol")


def test_two_signals_before_one_element_waits_it_takes_the_oldest():
    g = graph(
        el("start", "trigger"),
        el("pause", "delay", seconds=10),
        el("approve", "signal", name="approval"),
        el("done", "end"),
        connections=[edge("start", "pause"), edge("pause", "approve"), edge("approve", "done")],
    )
    execution, _ = start(g)
    execution.signal("approval", "first", at(1), "bob")
    execution.signal("approval", "second", at(2), "carol")

    execution.fire_timer("pause", at(10), ENGINE)

    assert execution.output["done"] == {"data": "first", "by": "bob", "at": at(1)}
    assert [s.data for s in execution.untaken("approval")] == ["second"]


def test_two_elements_of_one_name_take_the_signals_in_the_order_they_began_to_wait():
    g = graph(
        el("start", "trigger"),
        el("a", "signal", name="vote"),
        el("b", "signal", name="vote"),
        el("both", "join"),
        el("done", "end"),
        connections=[
            edge("start", "a"),
            edge("start", "b"),
            edge("a", "both"),
            edge("b", "both"),
            edge("both", "done"),
        ],
    )
    execution, _ = start(g)
    assert execution.waiting() == [("a", "vote"), ("b", "vote")]

    execution.signal("vote", "one", at(1), "bob")
    assert execution.nodes["a"].state == "completed"
    assert execution.nodes["b"].state == "waiting"
    execution.signal("vote", "two", at(2), "carol")

    assert execution.output["done"] == {
        "a": {"data": "one", "by": "bob", "at": at(1)},
        "b": {"data": "two", "by": "carol", "at": at(2)},
    }


def test_a_timeout_fires_first_the_element_fails_timed_out_and_the_error_port_catches_it():
    execution, _ = start(approval(timeout_s=60))

    events = execution.fire_timer("approve", at(60), ENGINE)

    assert events[0] == NodeFailed(at=at(60), actor=ENGINE, element="approve", error="timed out")
    assert execution.status == "completed"
    assert execution.output == {"late": {"error": "timed out", "attempts": 1}}


def test_a_timeout_without_an_error_port_fails_the_execution():
    g = graph(
        el("start", "trigger"),
        el("approve", "signal", name="approval", timeout_s=5),
        connections=[edge("start", "approve")],
    )
    execution, _ = start(g)

    execution.fire_timer("approve", at(5), ENGINE)

    assert execution.status == "failed"
    assert execution.error == "timed out"


def test_a_signal_recorded_before_the_timeout_wins_and_the_timer_then_decides_nothing():
    execution, _ = start(approval(timeout_s=60))
    execution.signal("approval", "yes", at(59), "bob")

    assert execution.timers() == []
    with pytest.raises(InvalidCommand):
        execution.fire_timer("approve", at(60), ENGINE)
    assert execution.output == {"done": {"data": "yes", "by": "bob", "at": at(59)}}


def test_a_signal_after_the_timeout_won_is_kept_untaken_while_the_execution_runs():
    g = graph(
        el("start", "trigger"),
        el("approve", "signal", name="approval", timeout_s=60),
        el("pause", "delay", seconds=100),
        el("done", "end"),
        connections=[edge("start", "approve"), edge("approve", "pause", "error")],
    )
    execution, _ = start(g)
    execution.fire_timer("approve", at(60), ENGINE)

    events = execution.signal("approval", "too late", at(61), "bob")

    assert [type(e).__name__ for e in events] == ["SignalReceived"]
    assert execution.nodes["approve"].state == "failed"
    assert [s.data for s in execution.untaken("approval")] == ["too late"]


def test_cancel_while_waiting_ends_the_wait_and_its_timer():
    execution, _ = start(approval(timeout_s=60))

    events = execution.cancel(at(3), "carol")

    assert events == [ExecutionCancelled(at=at(3), actor="carol")]
    assert execution.waiting() == []
    assert execution.timers() == []
    with pytest.raises(InvalidCommand, match="already cancelled"):
        execution.signal("approval", "yes", at(4), "bob")


def test_a_name_no_signal_element_has_is_refused_and_records_nothing():
    execution, _ = start(approval())
    seq = execution.seq

    with pytest.raises(InvalidCommand, match="'nope'"):
        execution.signal("nope", None, at(1), "bob")
    assert execution.seq == seq


def test_the_same_idempotency_key_records_one_signal_and_another_body_is_refused():
    g = graph(
        el("start", "trigger"),
        el("a", "signal", name="vote"),
        el("b", "signal", name="vote"),
        connections=[edge("start", "a"), edge("start", "b")],
    )
    execution, _ = start(g)
    assert len(execution.signal("vote", 1, at(1), "bob", "k1", "h1")) == 2

    assert execution.signal("vote", 1, at(2), "bob", "k1", "h1") == []
    with pytest.raises(InvalidCommand, match="Idempotency-Key"):
        execution.signal("vote", 2, at(3), "bob", "k1", "h2")
    assert execution.nodes["b"].state == "waiting"


def test_replaying_a_history_of_signals_decides_the_same_events():
    g = graph(
        el("start", "trigger"),
        el("pause", "delay", seconds=10),
        el("a", "signal", name="vote", timeout_s=30),
        el("b", "signal", name="vote", timeout_s=20),
        el("both", "join"),
        el("done", "end"),
        connections=[
            edge("start", "pause"),
            edge("pause", "a"),
            edge("pause", "b"),
            edge("a", "both"),
            edge("b", "both", "error"),
            edge("both", "done"),
        ],
    )
    execution, history = start(g)
    history += execution.signal("vote", "early", at(1), "bob")
    history += execution.fire_timer("pause", at(10), ENGINE)
    history += execution.fire_timer("b", at(30), ENGINE)
    assert execution.finished

    report = replay("ex-1", g, history)
    again = Execution.rebuild("ex-1", g, history)

    assert report.deterministic, report.divergence
    assert again.output == execution.output
    assert execution.output["done"] == {
        "a": {"data": "early", "by": "bob", "at": at(1)},
        "b": {"error": "timed out", "attempts": 1},
    }


def test_replay_notices_a_history_where_the_signal_went_to_the_other_element():
    g = graph(
        el("start", "trigger"),
        el("a", "signal", name="vote"),
        el("b", "signal", name="vote"),
        connections=[edge("start", "a"), edge("start", "b")],
    )
    execution, history = start(g)
    history += execution.signal("vote", 1, at(1), "bob")
    taken = history[-1]
    assert isinstance(taken, NodeCompleted)
    forged = [*history[:-1], NodeCompleted(at=taken.at, actor=taken.actor, element="b")]

    report = replay("ex-1", g, forged)

    assert not report.deterministic
    assert report.divergence is not None and report.divergence.seq == len(forged)


def test_the_status_shows_the_element_waiting_until_its_timeout_then_completed():
    execution, events = start(approval(timeout_s=60))
    doc = empty_status("ex-1")
    for seq, event in enumerate(events, 1):
        fold_status(doc, seq, event)
    assert doc.nodes["approve"].state == "waiting"
    assert doc.nodes["approve"].timeout_at == at(60)

    for event in execution.signal("approval", 1, at(2), "bob"):
        fold_status(doc, doc.position + 1, event)

    assert doc.nodes["approve"].state == "completed"
    assert doc.status == "completed"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"name": "has space"}, "name must be"),
        ({"name": "x" * 65}, "name must be"),
        ({"name": "ok", "timeout_s": 0}, "timeout_s"),
        ({}, "name"),
    ],
)
def test_bad_signal_params_are_refused_naming_the_element(params, why):
    with pytest.raises(DefinitionInvalid) as refused:
        graph(
            el("start", "trigger"),
            el("approve", "signal", **params),
            connections=[edge("start", "approve")],
        )

    assert refused.value.key == "approve"
    assert why in refused.value.detail


def test_a_rerun_from_after_the_signal_reuses_the_recorded_signal_and_waits_for_none():
    g = approval()
    original, _ = start(g)
    original.signal("approval", {"ok": True}, at(5), "bob")

    reused = plan_rerun(original, g, "done")
    rerun, events = Execution.start(
        "ex-2",
        g,
        ExecutionStarted(at=at(9), actor="carol", process_id="p", version=1, reused=reused),
    )

    assert rerun.status == "completed"
    assert rerun.output == {"done": {"data": {"ok": True}, "by": "bob", "at": at(5)}}
    assert not any(isinstance(e, NodeWaiting | SignalReceived) for e in events)


def test_a_rerun_from_the_signal_element_waits_again():
    g = approval()
    original, _ = start(g)
    original.signal("approval", {"ok": True}, at(5), "bob")

    reused = plan_rerun(original, g, "approve")
    rerun, _ = Execution.start(
        "ex-2",
        g,
        ExecutionStarted(at=at(9), actor="carol", process_id="p", version=1, reused=reused),
    )

    assert rerun.waiting() == [("approve", "approval")]
    assert rerun.untaken("approval") == []
