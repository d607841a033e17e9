"""The orchestrator, given events, when a command, then these events."""

from __future__ import annotations

from typing import Any

import pytest

from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.errors import InvalidCommand
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
from domain.execution import Execution
from tests.support import Thread, contract_thread, definition, edge, el

T0 = "2024-05-01T09:00:00.000000Z"
ACTOR = "alice"
RETRY = {"max_attempts": 3, "initial_interval_s": 1, "backoff": 2}


def at(seconds: float) -> str:
    return iso(parse_iso(T0) + seconds)


# --- building definitions -------------------------------------------------------------


def graph_of(*threads: Thread) -> Graph:
    return compile_definition(parse_definition(definition(*threads)))


CONTRACT_EXAMPLE = graph_of(contract_thread())


# --- given / when / then --------------------------------------------------------------


def started(input: Any = None) -> ExecutionStarted:
    return ExecutionStarted(at=T0, actor=ACTOR, process_id="proc-1", version=1, input=input)


def run(graph: Graph, input: Any = None) -> list[Event]:
    """When an execution starts: every event its start decides."""
    _, events = Execution.start("ex-1", graph, started(input))
    return events


def given(graph: Graph, history: list[Event]) -> Execution:
    """An execution as its events left it."""
    return Execution.rebuild("ex-1", graph, history)


def steps(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(type(e).__name__, getattr(e, "element", None)) for e in events]


def the(events: list[Event], kind: type[Event], element: str | None = None) -> Any:
    matching = [
        e
        for e in events
        if isinstance(e, kind) and (element is None or getattr(e, "element", None) == element)
    ]
    assert len(matching) == 1, f"expected one {kind.__name__} {element or ''}: {steps(events)}"
    return matching[0]


def state(execution: Execution) -> dict[str, Any]:
    return {
        "seq": execution.seq,
        "status": execution.status,
        "output": execution.output,
        "error": execution.error,
        "outputs": execution.outputs,
        "stack": execution.stack,
        "timers": execution.timers(),
        "in_flight": execution.in_flight(),
        "nodes": {
            key: (n.state, n.output, n.attempts, n.port, n.error, n.request, n.wake_at)
            for key, n in execution.nodes.items()
        },
    }


# --- the contract's example -----------------------------------------------------------


def test_the_contract_example_with_amount_120_takes_the_yes_branch_and_skips_no():
    events = run(CONTRACT_EXAMPLE, {"amount": 120})

    assert steps(events) == [
        ("ExecutionStarted", None),
        ("NodeExecuting", "start"),
        ("NodeCompleted", "start"),
        ("NodeExecuting", "score"),
        ("NodeCompleted", "score"),
        ("NodeExecuting", "big"),
        ("NodeCompleted", "big"),
        ("NodeExecuting", "yes"),
        ("NodeCompleted", "yes"),
        ("NodeSkipped", "no"),
        ("ExecutionCompleted", None),
    ]
    assert the(events, NodeCompleted, "score").output == {"score": 240}
    assert the(events, NodeCompleted, "big").port == "true"
    assert the(events, NodeCompleted, "big").output == {"score": 240}
    assert events[-1] == ExecutionCompleted(at=T0, actor=ACTOR, output={"yes": {"score": 240}})


def test_the_contract_example_with_amount_10_takes_the_no_branch_and_skips_yes():
    events = run(CONTRACT_EXAMPLE, {"amount": 10})

    assert the(events, NodeCompleted, "big").port == "false"
    assert the(events, NodeSkipped, "yes")
    assert the(events, NodeCompleted, "no").output == {"score": 20}
    assert the(events, ExecutionCompleted).output == {"no": {"score": 20}}


def test_every_event_carries_the_commands_time_and_actor():
    events = run(CONTRACT_EXAMPLE, {"amount": 120})

    assert {(e.at, e.actor) for e in events} == {(T0, ACTOR)}


# --- joins and dead paths -------------------------------------------------------------


SLOW_AND_FAST = graph_of(
    (
        [
            el("start", "trigger"),
            el("slow", "http", url="https://slow.example/{{ input.id }}"),
            el("fast", "transform", output={"double": "input.id * 2"}),
            el("both", "join"),
            el("done", "end"),
        ],
        [
            edge("start", "slow"),
            edge("start", "fast"),
            edge("slow", "both"),
            edge("fast", "both"),
            edge("both", "done"),
        ],
    )
)


def test_a_join_waits_for_every_incoming_branch():
    history = run(SLOW_AND_FAST, {"id": 7})

    assert ("NodeCompleted", "fast") in steps(history)
    assert ("NodeExecuting", "both") not in steps(history)
    assert given(SLOW_AND_FAST, history).status == "running"


def test_a_join_fires_once_with_the_map_of_upstream_outputs_when_the_last_branch_arrives():
    history = run(SLOW_AND_FAST, {"id": 7})
    execution = given(SLOW_AND_FAST, history)
    answer = {"status": 200, "headers": {}, "body": "ok"}

    events = execution.complete("slow", 1, answer, at(3), ACTOR)

    assert steps(events) == [
        ("NodeCompleted", "slow"),
        ("NodeExecuting", "both"),
        ("NodeCompleted", "both"),
        ("NodeExecuting", "done"),
        ("NodeCompleted", "done"),
        ("ExecutionCompleted", None),
    ]
    joined = {"slow": answer, "fast": {"double": 14}}
    assert the(events, NodeCompleted, "both").output == joined
    assert the(events, ExecutionCompleted).output == {"done": joined}
    assert steps(history + events).count(("NodeExecuting", "both")) == 1


BRANCHES_INTO_A_JOIN = graph_of(
    (
        [
            el("start", "trigger"),
            el("big", "condition", expression="input.n > 10"),
            el("high", "transform", output={"level": "'high'"}),
            el("low", "transform", output={"level": "'low'"}),
            el("both", "join"),
            el("done", "end"),
        ],
        [
            edge("start", "big"),
            edge("big", "high", "true"),
            edge("big", "low", "false"),
            edge("high", "both"),
            edge("low", "both"),
            edge("both", "done"),
        ],
    )
)


@pytest.mark.parametrize(
    ("n", "taken", "skipped"),
    [(50, "high", "low"), (5, "low", "high")],
)
def test_a_join_after_a_condition_gets_only_the_taken_branch_and_fires(n, taken, skipped):
    events = run(BRANCHES_INTO_A_JOIN, {"n": n})

    assert the(events, NodeSkipped, skipped)
    assert the(events, NodeCompleted, "both").output == {taken: {"level": taken}}
    assert the(events, ExecutionCompleted).output == {"done": {taken: {"level": taken}}}


GUARDED_JOIN = graph_of(
    (
        [
            el("start", "trigger"),
            el("go", "condition", expression="input.go"),
            el("left", "transform", expression="1"),
            el("right", "transform", expression="2"),
            el("both", "join"),
            el("after", "transform", expression="input"),
            el("joined", "end"),
            el("stopped", "end"),
        ],
        [
            edge("start", "go"),
            edge("go", "left", "true"),
            edge("go", "right", "true"),
            edge("go", "stopped", "false"),
            edge("left", "both"),
            edge("right", "both"),
            edge("both", "after"),
            edge("after", "joined"),
        ],
    )
)


def test_a_join_whose_every_branch_is_skipped_is_skipped_and_so_is_its_downstream():
    events = run(GUARDED_JOIN, {"go": False})
    execution = given(GUARDED_JOIN, events)

    for key in ("left", "right", "both", "after", "joined"):
        assert execution.nodes[key].state == "skipped", key
    assert ("NodeExecuting", "both") not in steps(events)
    assert execution.status == "completed"
    assert execution.output == {"stopped": {"go": False}}


def test_a_join_fires_when_every_branch_is_taken():
    events = run(GUARDED_JOIN, {"go": True})

    assert the(events, NodeCompleted, "both").output == {"left": 1, "right": 2}
    assert the(events, NodeSkipped, "stopped")
    assert the(events, ExecutionCompleted).output == {"joined": {"left": 1, "right": 2}}


def test_a_path_not_taken_is_skipped_all_along_its_chain():
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("check", "condition", expression="input.ok"),
                el("a", "transform", expression="input"),
                el("b", "http", url="https://never.example"),
                el("c", "delay", seconds=60),
                el("bad", "end"),
                el("good", "end"),
            ],
            [
                edge("start", "check"),
                edge("check", "a", "false"),
                edge("a", "b"),
                edge("b", "c"),
                edge("c", "bad"),
                edge("check", "good", "true"),
            ],
        )
    )

    events = run(graph, {"ok": True})

    skipped = [e.element for e in events if isinstance(e, NodeSkipped)]
    assert skipped == ["a", "b", "c", "bad"]
    assert the(events, ExecutionCompleted).output == {"good": {"ok": True}}


# --- failures -------------------------------------------------------------------------


def test_a_fail_element_fails_the_execution_with_its_rendered_message():
    graph = graph_of(
        (
            [el("start", "trigger"), el("stop", "fail", message="lead {{ input.name }} refused")],
            [edge("start", "stop")],
        )
    )

    events = run(graph, {"name": "bob"})

    assert steps(events)[-2:] == [("NodeFailed", "stop"), ("ExecutionFailed", "stop")]
    assert the(events, ExecutionFailed).error == "lead bob refused"
    assert the(events, ExecutionFailed).element == "stop"
    assert given(graph, events).status == "failed"


def test_a_fail_message_that_cannot_render_still_fails_the_execution_naming_the_element():
    graph = graph_of(
        (
            [el("start", "trigger"), el("stop", "fail", message="no {{ input.missing }}")],
            [edge("start", "stop")],
        )
    )

    events = run(graph, {})

    failed = the(events, ExecutionFailed)
    assert failed.element == "stop"
    assert "input.missing" in failed.error


def test_a_transform_that_fails_at_run_time_fails_the_execution_naming_the_element():
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("ratio", "transform", expression="input.a / input.b"),
                el("done", "end"),
            ],
            [edge("start", "ratio"), edge("ratio", "done")],
        )
    )

    events = run(graph, {"a": 1, "b": 0})

    assert the(events, NodeFailed, "ratio").error == the(events, ExecutionFailed).error
    assert "division by zero" in the(events, ExecutionFailed).error
    assert the(events, ExecutionFailed).element == "ratio"
    assert ("NodeExecuting", "done") not in steps(events)
    assert given(graph, events).nodes["ratio"].state == "failed"


def test_a_condition_that_does_not_give_a_bool_fails_the_execution():
    graph = graph_of(
        (
            [el("start", "trigger"), el("c", "condition", expression="input.n"), el("e", "end")],
            [edge("start", "c"), edge("c", "e", "true")],
        )
    )

    events = run(graph, {"n": 3})

    assert the(events, ExecutionFailed).element == "c"
    assert "not a bool" in the(events, ExecutionFailed).error


CAUGHT = graph_of(
    (
        [
            el("start", "trigger"),
            el("ratio", "transform", expression="input.a / input.b"),
            el("fine", "end"),
            el("handle", "transform", output={"why": "input.error", "tries": "input.attempts"}),
            el("recovered", "end"),
        ],
        [
            edge("start", "ratio"),
            edge("ratio", "fine"),
            edge("ratio", "handle", "error"),
            edge("handle", "recovered"),
        ],
    )
)


def test_an_error_port_catches_a_failure_and_passes_error_and_attempts_on():
    events = run(CAUGHT, {"a": 1, "b": 0})
    execution = given(CAUGHT, events)

    error = the(events, NodeFailed, "ratio").error
    assert the(events, NodeExecuting, "handle")
    assert the(events, NodeCompleted, "handle").output == {"why": error, "tries": 1}
    assert execution.nodes["ratio"].state == "failed"
    assert execution.nodes["fine"].state == "skipped"
    assert execution.status == "completed"
    assert execution.output == {"recovered": {"why": error, "tries": 1}}


def test_an_error_port_is_skipped_when_the_element_succeeds():
    events = run(CAUGHT, {"a": 6, "b": 3})

    assert the(events, NodeSkipped, "handle")
    assert the(events, NodeSkipped, "recovered")
    assert the(events, ExecutionCompleted).output == {"fine": 2}


# --- delays ---------------------------------------------------------------------------


WAIT = graph_of(
    (
        [el("start", "trigger"), el("pause", "delay", seconds=90), el("done", "end")],
        [edge("start", "pause"), edge("pause", "done")],
    )
)


def test_a_delay_parks_the_execution_with_its_wake_up_time_recorded():
    events = run(WAIT, {"x": 1})
    execution = given(WAIT, events)

    assert steps(events)[-1] == ("NodeExecuting", "pause")
    assert the(events, NodeExecuting, "pause").wake_at == at(90)
    assert execution.status == "running"
    assert execution.timers() == [("pause", at(90))]
    assert execution.in_flight() == []


def test_firing_a_delays_timer_completes_it_with_its_input_and_the_execution_goes_on():
    execution = given(WAIT, run(WAIT, {"x": 1}))

    events = execution.fire_timer("pause", at(90), ACTOR)

    assert steps(events) == [
        ("NodeCompleted", "pause"),
        ("NodeExecuting", "done"),
        ("NodeCompleted", "done"),
        ("ExecutionCompleted", None),
    ]
    assert the(events, NodeCompleted, "pause").output == {"x": 1}
    assert the(events, ExecutionCompleted).output == {"done": {"x": 1}}
    assert execution.timers() == []


def test_a_timer_that_is_not_waiting_cannot_fire():
    execution = given(WAIT, run(WAIT, {"x": 1}))
    execution.fire_timer("pause", at(90), ACTOR)

    with pytest.raises(InvalidCommand):
        execution.fire_timer("pause", at(91), ACTOR)
    with pytest.raises(InvalidCommand):
        execution.fire_timer("done", at(91), ACTOR)


# --- http: in flight, answered, retried -----------------------------------------------


CALL = graph_of(
    (
        [
            el("start", "trigger"),
            el(
                "call",
                "http",
                method="POST",
                url="https://crm.example/leads/{{ input.id }}",
                headers={"X-Lead": "{{ input.name }}"},
                body={"amount": "{{ input.amount }}", "note": "lead {{ input.name }}"},
                retry=RETRY,
            ),
            el("done", "end"),
        ],
        [edge("start", "call"), edge("call", "done")],
    )
)
LEAD = {"id": 42, "name": "bob", "amount": 120}
REQUEST = {
    "method": "POST",
    "url": "https://crm.example/leads/42",
    "headers": {"X-Lead": "bob"},
    "body": {"amount": 120, "note": "lead bob"},
    "accept_status": None,
}
ANSWER = {"status": 201, "headers": {"content-type": "application/json"}, "body": {"ok": True}}


def test_an_http_element_is_recorded_in_flight_with_its_rendered_request():
    events = run(CALL, LEAD)
    execution = given(CALL, events)

    assert steps(events)[-1] == ("NodeExecuting", "call")
    assert the(events, NodeExecuting, "call").input == REQUEST
    assert execution.in_flight() == [("call", 1, REQUEST)]
    assert execution.nodes["call"].state == "running"
    assert execution.status == "running"


def test_completing_an_http_element_routes_its_answer_downstream():
    execution = given(CALL, run(CALL, LEAD))

    events = execution.complete("call", 1, ANSWER, at(1), ACTOR)

    assert steps(events) == [
        ("NodeCompleted", "call"),
        ("NodeExecuting", "done"),
        ("NodeCompleted", "done"),
        ("ExecutionCompleted", None),
    ]
    assert the(events, ExecutionCompleted).output == {"done": ANSWER}
    assert execution.in_flight() == []


def test_a_failed_attempt_waits_by_the_retry_policy_before_the_next():
    history = run(CALL, LEAD)

    first = given(CALL, history).fail("call", 1, "503", at(10), ACTOR)
    assert steps(first) == [("NodeFailed", "call")]
    assert the(first, NodeFailed).retry_at == at(11)
    history += first
    assert given(CALL, history).timers() == [("call", at(11))]
    assert given(CALL, history).in_flight() == []

    second_attempt = given(CALL, history).fire_timer("call", at(11), ACTOR)
    assert second_attempt == [
        NodeExecuting(at=at(11), actor=ACTOR, element="call", attempt=2, input=REQUEST)
    ]
    history += second_attempt
    assert given(CALL, history).in_flight() == [("call", 2, REQUEST)]

    second = given(CALL, history).fail("call", 2, "503", at(20), ACTOR)
    assert the(second, NodeFailed).retry_at == at(22)


def test_the_final_failed_attempt_fails_the_execution():
    history = run(CALL, LEAD)
    for attempt, now in ((1, 10), (2, 20)):
        history += given(CALL, history).fail("call", attempt, "503", at(now), ACTOR)
        history += given(CALL, history).fire_timer("call", at(now + 5), ACTOR)

    events = given(CALL, history).fail("call", 3, "still 503", at(30), ACTOR)

    assert steps(events) == [("NodeFailed", "call"), ("ExecutionFailed", "call")]
    assert the(events, NodeFailed).retry_at is None
    assert the(events, NodeFailed).attempt == 3
    assert the(events, ExecutionFailed) == ExecutionFailed(
        at=at(30), actor=ACTOR, error="still 503", element="call"
    )
    assert given(CALL, history + events).nodes["call"].attempts == 3


def test_an_effect_that_finally_fails_goes_to_its_error_port_with_the_attempts_made():
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("call", "http", url="https://x.example", retry={"max_attempts": 2}),
                el("ok", "end"),
                el("sorry", "end"),
            ],
            [edge("start", "call"), edge("call", "ok"), edge("call", "sorry", "error")],
        )
    )
    history = run(graph, {})
    history += given(graph, history).fail("call", 1, "timeout", at(1), ACTOR)
    history += given(graph, history).fire_timer("call", at(2), ACTOR)

    events = given(graph, history).fail("call", 2, "timeout again", at(3), ACTOR)

    assert the(events, NodeSkipped, "ok")
    assert the(events, ExecutionCompleted).output == {
        "sorry": {"error": "timeout again", "attempts": 2}
    }


def test_an_http_element_without_a_retry_policy_fails_on_its_first_failure():
    graph = graph_of(
        (
            [el("start", "trigger"), el("call", "http", url="https://x.example")],
            [edge("start", "call")],
        )
    )
    execution = given(graph, run(graph, {}))

    events = execution.fail("call", 1, "refused", at(1), ACTOR)

    assert steps(events) == [("NodeFailed", "call"), ("ExecutionFailed", "call")]


def test_an_http_request_that_cannot_render_fails_the_element_without_calling_anything():
    graph = graph_of(
        (
            [el("start", "trigger"), el("call", "http", url="https://x/{{ input.nope }}")],
            [edge("start", "call")],
        )
    )

    events = run(graph, {})
    execution = given(graph, events)

    assert the(events, ExecutionFailed).element == "call"
    assert execution.in_flight() == []


def test_an_agent_is_recorded_in_flight_with_its_rendered_prompt():
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("ask", "agent", agent_id="ag-1", model="m-1", prompt="Score {{ input.name }}"),
                el("done", "end"),
            ],
            [edge("start", "ask"), edge("ask", "done")],
        )
    )
    execution = given(graph, run(graph, {"name": "bob"}))
    request = {"agent_id": "ag-1", "model": "m-1", "prompt": "Score bob"}
    assert execution.in_flight() == [("ask", 1, request)]

    answer = {"text": "7/10", "model": "m-1", "usage": {"total_tokens": 12}}
    events = execution.complete("ask", 1, answer, at(2), ACTOR)

    assert the(events, ExecutionCompleted).output == {"done": answer}


# --- stale commands and cancelling ----------------------------------------------------


def test_an_answer_for_another_attempt_is_refused():
    execution = given(CALL, run(CALL, LEAD))

    with pytest.raises(InvalidCommand):
        execution.complete("call", 2, ANSWER, at(1), ACTOR)
    with pytest.raises(InvalidCommand):
        execution.fail("call", 0, "503", at(1), ACTOR)
    assert execution.in_flight() == [("call", 1, REQUEST)]


def test_an_answer_for_an_element_that_is_not_in_flight_is_refused():
    execution = given(CALL, run(CALL, LEAD))

    with pytest.raises(InvalidCommand):
        execution.complete("done", 1, ANSWER, at(1), ACTOR)
    with pytest.raises(InvalidCommand):
        execution.complete("nowhere", 1, ANSWER, at(1), ACTOR)


def test_an_answer_during_a_retry_wait_is_refused():
    history = run(CALL, LEAD)
    history += given(CALL, history).fail("call", 1, "503", at(1), ACTOR)

    with pytest.raises(InvalidCommand):
        given(CALL, history).complete("call", 1, ANSWER, at(1.5), ACTOR)


def test_cancelling_ends_the_execution_and_an_answer_after_it_is_refused():
    history = run(CALL, LEAD)
    execution = given(CALL, history)

    events = execution.cancel(at(5), "bob", reason="changed my mind")

    assert events == [ExecutionCancelled(at=at(5), actor="bob", reason="changed my mind")]
    assert execution.status == "cancelled"
    assert execution.finished
    with pytest.raises(InvalidCommand):
        given(CALL, history + events).complete("call", 1, ANSWER, at(6), ACTOR)


def test_a_cancelled_execution_has_nothing_left_in_flight_or_waiting():
    graph = graph_of(
        (
            [el("s1", "trigger"), el("call", "http", url="https://x.example")],
            [edge("s1", "call")],
        ),
        (
            [el("s2", "trigger"), el("pause", "delay", seconds=60)],
            [edge("s2", "pause")],
        ),
    )
    history = run(graph, {})
    execution = given(graph, history)
    assert execution.in_flight() and execution.timers()

    execution.cancel(at(1), ACTOR)

    assert execution.in_flight() == []
    assert execution.timers() == []
    with pytest.raises(InvalidCommand):
        execution.fire_timer("pause", at(60), ACTOR)


def test_a_second_cancel_is_refused():
    execution = given(CALL, run(CALL, LEAD))
    execution.cancel(at(5), ACTOR)

    with pytest.raises(InvalidCommand):
        execution.cancel(at(6), ACTOR)


def test_a_finished_execution_cannot_be_cancelled():
    execution = given(CONTRACT_EXAMPLE, run(CONTRACT_EXAMPLE, {"amount": 1}))

    with pytest.raises(InvalidCommand):
        execution.cancel(at(1), ACTOR)


def test_advancing_a_finished_execution_decides_nothing():
    execution = given(CONTRACT_EXAMPLE, run(CONTRACT_EXAMPLE, {"amount": 1}))

    assert execution.advance(at(1), ACTOR) == []


# --- threads --------------------------------------------------------------------------


def test_each_thread_runs_from_its_own_trigger_with_the_execution_input():
    graph = graph_of(
        (
            [
                el("a", "trigger"),
                el("double", "transform", expression="input.n * 2"),
                el("a_end", "end"),
            ],
            [edge("a", "double"), edge("double", "a_end")],
        ),
        (
            [
                el("b", "trigger"),
                el("negate", "transform", expression="-input.n"),
                el("b_end", "end"),
            ],
            [edge("b", "negate"), edge("negate", "b_end")],
        ),
    )

    events = run(graph, {"n": 4})

    assert the(events, NodeCompleted, "a").output == {"n": 4}
    assert the(events, NodeCompleted, "b").output == {"n": 4}
    assert the(events, ExecutionCompleted).output == {"a_end": 8, "b_end": -4}


def test_the_execution_completes_only_when_every_thread_is_done():
    graph = graph_of(
        ([el("a", "trigger"), el("a_end", "end")], [edge("a", "a_end")]),
        (
            [el("b", "trigger"), el("pause", "delay", seconds=5), el("b_end", "end")],
            [edge("b", "pause"), edge("pause", "b_end")],
        ),
    )
    history = run(graph, {"n": 1})
    assert given(graph, history).status == "running"
    assert the(history, NodeCompleted, "a_end")

    events = given(graph, history).fire_timer("pause", at(5), ACTOR)

    assert the(events, ExecutionCompleted).output == {"a_end": {"n": 1}, "b_end": {"n": 1}}


def test_an_expression_sees_the_execution_input_and_upstream_outputs():
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("first", "transform", output={"v": "input.n + 1"}),
                el("second", "transform", expression="nodes.first.output.v + execution.input.n"),
                el("done", "end"),
            ],
            [edge("start", "first"), edge("first", "second"), edge("second", "done")],
        )
    )

    assert the(run(graph, {"n": 10}), ExecutionCompleted).output == {"done": 21}


# --- rebuilding -----------------------------------------------------------------------


BUSY = graph_of(
    (
        [
            el("start", "trigger"),
            el("call", "http", url="https://x/{{ input.id }}", retry=RETRY),
            el("pause", "delay", seconds=30),
            el("both", "join"),
            el("done", "end"),
        ],
        [
            edge("start", "call"),
            edge("start", "pause"),
            edge("call", "both"),
            edge("pause", "both"),
            edge("both", "done"),
        ],
    )
)


def test_rebuilding_from_the_events_gives_the_live_state_at_every_step():
    live, history = Execution.start("ex-1", BUSY, started({"id": 9}))
    commands = [
        lambda: live.fail("call", 1, "503", at(1), ACTOR),
        lambda: live.fire_timer("call", at(2), ACTOR),
        lambda: live.complete("call", 2, ANSWER, at(3), ACTOR),
        lambda: live.fire_timer("pause", at(30), ACTOR),
    ]

    assert state(given(BUSY, history)) == state(live)
    for command in commands:
        history += command()
        assert state(given(BUSY, history)) == state(live)
    assert live.status == "completed"
    assert live.output == {"done": {"call": ANSWER, "pause": {"id": 9}}}


def test_rebuilding_mid_flight_keeps_the_stack_timers_and_effects_in_flight():
    live, history = Execution.start("ex-1", BUSY, started({"id": 9}))
    history += live.fail("call", 1, "503", at(1), ACTOR)

    execution = given(BUSY, history)

    assert execution.status == "running"
    assert execution.timers() == [("call", at(2)), ("pause", at(30))]
    assert execution.in_flight() == []
    assert execution.seq == len(history)
    assert state(execution) == state(live)
