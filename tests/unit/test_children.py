"""Sub-processes and foreach on the aggregate: which children start, in which order, and
what their ends decide; a pure fold of events, so replay decides the same."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from domain.children import MAX_DEPTH, child_id
from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.events import (
    ChildEnded,
    Event,
    ExecutionCompleted,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    ParentRef,
)
from domain.execution import Execution
from domain.history.replay import replay
from projections.status import empty_status, fold_status
from tests.support import definition, edge, el

T0 = "2024-05-01T09:00:00.000000Z"
PARENT = "0b7c1a52-5f0e-4c55-9d0a-6a3c3f1f2a10"
CHILD_PROCESS = "5d8e2f77-1c3b-4a9e-8f61-2b7d4c9e0a33"
ENGINE = "loom-engine"


def at(seconds: float) -> str:
    return iso(parse_iso(T0) + seconds)


def graph(*elements: dict[str, Any], connections: list[dict[str, Any]]) -> Graph:
    return compile_definition(parse_definition(definition((list(elements), connections))))


def calling(**params: Any) -> Graph:
    """start → call (subprocess) → done, a failure caught by `oops`."""
    return graph(
        el("start", "trigger"),
        el("call", "subprocess", process_id=CHILD_PROCESS, **params),
        el("done", "end"),
        el("oops", "end"),
        connections=[edge("start", "call"), edge("call", "done"), edge("call", "oops", "error")],
    )


def each(items: str = "input.items", concurrency: int = 2) -> Graph:
    """start → each (foreach) → done."""
    return graph(
        el("start", "trigger"),
        el("each", "foreach", items=items, process_id=CHILD_PROCESS, concurrency=concurrency),
        el("done", "end"),
        connections=[edge("start", "each"), edge("each", "done")],
    )


def start(g: Graph, input: Any = None, parent: ParentRef | None = None) -> Execution:
    started = ExecutionStarted(
        at=T0, actor="alice", process_id="p", version=1, input=input, parent=parent
    )
    execution, _ = Execution.start(PARENT, g, started)
    return execution


def ended(
    execution: Execution, key: str, index: int, output: Any = None, *, status: str = "completed",
    attempt: int = 1, error: str | None = None, seconds: float = 1,
) -> list[Event]:  # fmt: skip
    return execution.child_ended(key, attempt, index, status, output, error, at(seconds), ENGINE)


def launched(execution: Execution) -> list[tuple[int, Any]]:
    return [(spec.index, spec.input) for spec in execution.take_launches()]


def test_a_subprocess_starts_one_child_with_its_input_under_an_id_derived_from_its_place():
    execution = start(calling(), {"order": 7})

    [spec] = execution.take_launches()

    assert spec.execution_id == child_id(PARENT, "call", 1, 0)
    assert (spec.process_id, spec.version, spec.input) == (CHILD_PROCESS, None, {"order": 7})
    assert spec.depth == 2
    assert execution.nodes["call"].state == "running"
    assert execution.in_flight() == []  # nothing for the engine to call: it waits, holding nothing
    assert execution.take_launches() == []  # handed over once


def test_a_subprocess_whose_child_runs_past_timeout_s_fails_and_abandons_the_child():
    g = calling(timeout_s=60)
    started = ExecutionStarted(at=T0, actor="alice", process_id="p", version=1, input=1)
    execution, history = Execution.start(PARENT, g, started)
    [spec] = execution.take_launches()

    assert execution.timers() == [("call", at(60))]  # durable: a timer, not a task
    events = execution.fire_timer("call", at(60), ENGINE)

    failed = execution.nodes["call"]
    assert (failed.state, failed.error) == (
        "failed",
        "timed out after 60 s waiting for its child executions",
    )
    assert "oops" in execution.output  # the error port takes the timeout
    assert execution.abandoned(events) == [spec.execution_id]
    assert ended(execution, "call", 0, {"late": True}, seconds=61) == []  # too late to count
    rebuilt = Execution.rebuild(PARENT, g, history + events)
    assert (rebuilt.status, rebuilt.timers()) == ("completed", [])


def test_a_retried_subprocess_gets_a_fresh_timeout_per_attempt():
    retry = {"max_attempts": 2, "initial_interval_s": 5}
    execution = start(calling(timeout_s=30, retry=retry), 1)

    execution.fire_timer("call", at(30), ENGINE)
    assert execution.timers() == [("call", at(35))]  # the retry wait
    execution.fire_timer("call", at(35), ENGINE)

    assert execution.timers() == [("call", at(65))]
    assert execution.nodes["call"].attempts == 2


def test_a_foreach_timeout_counts_from_the_start_of_the_element_not_of_each_child():
    g = graph(
        el("start", "trigger"),
        el("each", "foreach", items="input.items", process_id=CHILD_PROCESS, concurrency=1,
           timeout_s=10),
        el("done", "end"),
        connections=[edge("start", "each"), edge("each", "done")],
    )  # fmt: skip
    execution = start(g, {"items": ["a", "b"]})
    ended(execution, "each", 0, "A", seconds=9)

    assert execution.timers() == [("each", at(10))]
    execution.fire_timer("each", at(10), ENGINE)
    assert execution.status == "failed"
    assert "timed out after 10 s" in (execution.error or "")


def test_the_same_start_decided_twice_names_the_same_child():
    first, second = start(calling(), 1), start(calling(), 1)

    assert first.take_launches() == second.take_launches()


def test_a_child_that_completes_completes_the_element_with_its_output():
    execution = start(calling(), {"order": 7})

    events = ended(execution, "call", 0, {"shipped": True})

    assert isinstance(events[0], ChildEnded)
    assert events[0].execution_id == child_id(PARENT, "call", 1, 0)
    assert events[1] == NodeCompleted(
        at=at(1), actor=ENGINE, element="call", output={"shipped": True}
    )
    assert execution.status == "completed"
    assert execution.output == {"done": {"shipped": True}}


def test_a_child_that_fails_fails_the_element_with_its_error_and_the_error_port_catches_it():
    execution = start(calling(), 1)

    events = ended(execution, "call", 0, status="failed", error="card declined")

    failed = [e for e in events if isinstance(e, NodeFailed)]
    assert failed[0].error == "card declined"
    assert execution.status == "completed"
    assert "oops" in execution.output and "done" not in execution.output


def test_each_retry_of_a_subprocess_runs_a_fresh_child():
    retry = {"max_attempts": 2, "initial_interval_s": 5}
    execution = start(calling(retry=retry), 1)
    execution.take_launches()

    ended(execution, "call", 0, status="failed", error="flaky")
    assert execution.timers() == [("call", at(6))]
    execution.fire_timer("call", at(6), ENGINE)
    [spec] = execution.take_launches()

    assert spec.attempt == 2
    assert spec.execution_id == child_id(PARENT, "call", 2, 0)
    assert ended(execution, "call", 0, status="completed", seconds=7) == []  # the old attempt's
    ended(execution, "call", 0, {"ok": 1}, attempt=2, seconds=8)
    assert execution.output == {"done": {"ok": 1}}


def test_foreach_runs_at_most_concurrency_children_and_keeps_item_order_whatever_ends_first():
    execution = start(each(concurrency=2), {"items": ["a", "b", "c", "d", "e"]})

    assert launched(execution) == [(0, {"item": "a", "index": 0}), (1, {"item": "b", "index": 1})]
    ended(execution, "each", 1, "B")
    assert launched(execution) == [(2, {"item": "c", "index": 2})]
    ended(execution, "each", 0, "A")
    assert launched(execution) == [(3, {"item": "d", "index": 3})]
    ended(execution, "each", 3, "D")
    ended(execution, "each", 2, "C")
    assert launched(execution) == [(4, {"item": "e", "index": 4})]
    assert execution.nodes["each"].state == "running"
    events = ended(execution, "each", 4, "E")

    assert events[1] == NodeCompleted(
        at=at(1), actor=ENGINE, element="each", output={"results": ["A", "B", "C", "D", "E"]}
    )
    assert execution.output == {"done": {"results": ["A", "B", "C", "D", "E"]}}


def test_the_first_failure_starts_no_more_children_abandons_the_running_ones_and_names_the_item():
    execution = start(each(concurrency=3), {"items": list(range(10))})
    execution.take_launches()

    events = ended(execution, "each", 1, status="failed", error="boom")

    assert execution.take_launches() == []
    failed = next(e for e in events if isinstance(e, NodeFailed))
    assert failed.error == "item 1 failed: boom"
    assert execution.abandoned(events) == [child_id(PARENT, "each", 1, i) for i in (0, 2)]
    assert execution.status == "failed"
    assert ended(execution, "each", 0, "late", seconds=2) == []


def test_a_child_told_twice_decides_nothing_the_second_time():
    execution = start(each(concurrency=2), {"items": [1, 2, 3, 4]})
    assert ended(execution, "each", 0, "x") != []

    assert ended(execution, "each", 0, "x") == []
    assert ended(execution, "each", 3, "never started") == []


def test_an_empty_list_completes_at_once_with_no_results_and_starts_no_child():
    execution = start(each(), {"items": []})

    assert execution.take_launches() == []
    assert execution.output == {"done": {"results": []}}


def test_items_that_are_not_a_list_fail_the_element_clearly():
    execution = start(each(), {"items": "abc"})

    assert execution.status == "failed"
    assert execution.error is not None and "items must be a list, got str" in execution.error


def test_cancelling_a_parent_abandons_every_running_child():
    execution = start(each(concurrency=2), {"items": [1, 2, 3]})
    ended(execution, "each", 0, "one")

    events = execution.cancel(at(2), "alice")

    assert execution.abandoned(events) == [child_id(PARENT, "each", 1, i) for i in (1, 2)]


def test_nesting_deeper_than_the_limit_fails_the_element_naming_the_depth():
    parent = ParentRef(execution_id="x", element="call", depth=MAX_DEPTH)
    execution = start(calling(), 1, parent=parent)

    assert execution.take_launches() == []
    assert execution.nodes["call"].error == (
        f"nesting deeper than {MAX_DEPTH} levels: this execution is at depth {MAX_DEPTH}, "
        "so call cannot start a child"
    )
    assert "oops" in execution.output


def history_of(g: Graph, input: Any, ends: list[tuple[int, Any]]) -> list[Event]:
    started = ExecutionStarted(at=T0, actor="alice", process_id="p", version=1, input=input)
    execution, history = Execution.start(PARENT, g, started)
    for n, (index, output) in enumerate(ends):
        history += ended(execution, "each", index, output, seconds=n + 1)
    return history


def test_a_foreach_history_with_out_of_order_ends_replays_deterministically():
    g = each(concurrency=3)
    history = history_of(g, {"items": [1, 2, 3, 4]}, [(2, "c"), (0, "a"), (3, "d"), (1, "b")])
    assert isinstance(history[-1], ExecutionCompleted)

    assert replay(PARENT, g, history).deterministic


def test_replay_notices_a_foreach_result_that_does_not_follow_from_its_children():
    g = each(concurrency=3)
    history = history_of(g, {"items": [1, 2]}, [(1, "b"), (0, "a")])
    at_completed = next(
        i for i, e in enumerate(history) if isinstance(e, NodeCompleted) and e.element == "each"
    )
    tampered = msgspec.structs.replace(history[at_completed], output={"results": ["b", "a"]})
    history[at_completed] = tampered

    report = replay(PARENT, g, history)

    assert report.divergence is not None
    assert report.divergence.seq == at_completed + 1


def test_the_status_links_a_parent_to_its_children_and_a_child_to_its_parent():
    g = each(concurrency=1)
    history = history_of(g, {"items": ["a", "b"]}, [(0, "A")])
    doc = empty_status(PARENT)
    ended = next(i for i, e in enumerate(history) if isinstance(e, ChildEnded))
    for seq, event in enumerate(history[:ended], 1):
        fold_status(doc, seq, event)
    assert doc.nodes["each"].child_execution_ids == [child_id(PARENT, "each", 1, 0)]
    assert doc.nodes["each"].items == 2
    for seq, event in enumerate(history[ended:], ended + 1):
        fold_status(doc, seq, event)

    assert doc.nodes["each"].child_execution_ids == [child_id(PARENT, "each", 1, i) for i in (0, 1)]
    ref = ParentRef(execution_id=PARENT, element="each", index=1)
    child = empty_status(child_id(PARENT, "each", 1, 1))
    started = ExecutionStarted(
        at=T0, actor=ENGINE, process_id=CHILD_PROCESS, version=1, input={"item": "b"},
        trigger={"type": "parent"}, parent=ref,
    )  # fmt: skip
    fold_status(child, 1, started)
    encoded = msgspec.to_builtins(child)
    assert encoded["parent"] == {"execution_id": PARENT, "element": "each"}
    assert encoded["trigger"] == {"type": "parent"}


def test_a_subprocess_node_shows_its_one_child():
    execution_events: list[Event] = []
    started = ExecutionStarted(at=T0, actor="alice", process_id="p", version=1, input=1)
    _, execution_events = Execution.start(PARENT, calling(), started)
    doc = empty_status(PARENT)
    for seq, event in enumerate(execution_events, 1):
        fold_status(doc, seq, event)

    assert doc.nodes["call"].child_execution_id == child_id(PARENT, "call", 1, 0)
    assert msgspec.to_builtins(doc.nodes["call"]).get("child_execution_ids") is None


@pytest.mark.parametrize("concurrency", [0, 101])
def test_a_concurrency_out_of_range_is_refused_at_save(concurrency: int):
    with pytest.raises(Exception, match="concurrency must be between 1 and 100"):
        each(concurrency=concurrency)


def test_a_rebuilt_parent_waits_for_the_same_children_and_starts_none_itself():
    g = each(concurrency=2)
    history = history_of(g, {"items": ["a", "b", "c"]}, [(1, "B")])
    executing = next(e for e in history if isinstance(e, NodeExecuting) and e.element == "each")
    assert executing.input == {"items": ["a", "b", "c"], "concurrency": 2, "each": True}

    rebuilt = Execution.rebuild(PARENT, g, history)

    assert rebuilt.take_launches() == []
    assert rebuilt.awaiting() == [("each", 1, i, child_id(PARENT, "each", 1, i)) for i in (0, 2)]
    ended(rebuilt, "each", 0, "A")
    ended(rebuilt, "each", 2, "C")
    assert rebuilt.output == {"done": {"results": ["A", "B", "C"]}}
