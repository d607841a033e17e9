"""Committed histories replayed against today's code, and one that must diverge.

Each file under tests/histories/ is `{"definition": …, "events": […]}`, events as msgspec
JSON of `domain.events.AnyEvent`. The histories were recorded with `record` below, which
drives the aggregate like the engine does, answering effects from a script instead of
the network. To add one (for a new element type or a bug fix), add a scenario to
SCENARIOS and run once from the repository root:

    .venv/bin/python -c "import sys; sys.path[:0] = ['.', 'tests/unit']; \
        import test_replay; test_replay.write_history('<name>')"
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.elements import ELEMENT_TYPES
from domain.events import AnyEvent, Event, ExecutionStarted, NodeCompleted
from domain.execution import Execution
from domain.history.replay import replay
from tests.support import Thread, contract_thread, definition, edge, el

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
DIVERGENT = HISTORIES / "divergent"
T0 = "2024-05-01T09:00:00.000000Z"
ENGINE = "loom-engine"
CHILD = "5d8e2f77-1c3b-4a9e-8f61-2b7d4c9e0a33"  # the process the children run


class History(msgspec.Struct):
    definition: dict[str, Any]
    events: list[AnyEvent]


class Failure(msgspec.Struct, frozen=True):
    """A scripted answer: the effect failed with this message."""

    error: str


# --- recording ------------------------------------------------------------------------


def record(
    definition: dict[str, Any],
    input: Any,
    answers: dict[str, list[Any]] | None = None,
    cancel_when_waiting: bool = False,
    signals: list[tuple[str, Any, str]] | None = None,
) -> list[Event]:
    """Run a definition through the aggregate as the engine would, one second per step.

    Effects in flight, and the children a subprocess or foreach awaits, are answered in
    order from `answers[key]` (an output, or a Failure);
    then `signals` (name, data, actor) are sent one a step while an element waits;
    timers fire at their wake-up time. With `cancel_when_waiting`, the first time nothing
    is in flight and only timers remain, the execution is cancelled instead.
    """
    scripted = {key: list(outcomes) for key, outcomes in (answers or {}).items()}
    to_send = list(signals or [])
    graph = _compile(definition)
    started = ExecutionStarted(at=T0, actor="alice", process_id="proc-1", version=1, input=input)
    execution, events = Execution.start("ex-1", graph, started)
    now = parse_iso(T0)
    while not execution.finished:
        now += 1
        if execution.yielded:  # a long run of pure elements paused: the engine goes on
            events += execution.advance(iso(now), ENGINE)
        elif execution.in_flight():
            key, attempt, _ = execution.in_flight()[0]
            outcome = scripted[key].pop(0)
            if isinstance(outcome, Failure):
                events += execution.fail(key, attempt, outcome.error, iso(now), ENGINE)
            else:
                events += execution.complete(key, attempt, outcome, iso(now), ENGINE)
        elif execution.awaiting():  # children end in order, answered like effects
            key, attempt, index, _ = execution.awaiting()[0]
            outcome = scripted[key].pop(0)
            failed = isinstance(outcome, Failure)
            events += execution.child_ended(
                key,
                attempt,
                index,
                "failed" if failed else "completed",
                None if failed else outcome,
                outcome.error if failed else None,
                iso(now),
                ENGINE,
            )
        elif to_send and execution.waiting():
            name, data, actor = to_send.pop(0)
            events += execution.signal(name, data, iso(now), actor)
        elif execution.timers():
            if cancel_when_waiting:
                events += execution.cancel(iso(now), "bob", reason="no longer needed")
                break
            key, wake_at = min(execution.timers(), key=lambda timer: timer[1])
            now = max(now, parse_iso(wake_at))
            events += execution.fire_timer(key, iso(now), ENGINE)
        else:
            raise AssertionError("a running execution with nothing in flight or waiting")
    return events


def write_history(name: str) -> Path:
    """Record SCENARIOS[name] and write it as tests/histories/<name>.json."""
    definition, input, answers, *rest = SCENARIOS[name]
    events = record(definition, input, answers, *rest)
    path = HISTORIES / f"{name}.json"
    encoded = msgspec.json.encode(History(definition, events))
    path.write_bytes(msgspec.json.format(encoded, indent=2) + b"\n")
    return path


def _compile(definition: dict[str, Any]) -> Graph:
    return compile_definition(parse_definition(definition))


def _load(path: Path) -> History:
    return msgspec.json.decode(path.read_bytes(), type=History)


# --- the scenarios the committed histories were recorded from -------------------------


def process(*threads: Thread) -> dict[str, Any]:
    return definition(*threads, project="Sales", app="Leads", name="Replay")


CONTRACT_EXAMPLE = process(contract_thread())
HTTP = process(
    (
        [
            el("start", "trigger"),
            el(
                "call",
                "http",
                method="POST",
                url="https://crm.example/leads/{{ input.id }}",
                headers={"X-Lead": "{{ input.name }}"},
                body={"amount": "{{ input.amount }}"},
                retry={"max_attempts": 3, "initial_interval_s": 1, "backoff": 2},
            ),
            el("owner", "transform", expression="input.body.owner"),
            el("done", "end"),
        ],
        [edge("start", "call"), edge("call", "owner"), edge("owner", "done")],
    )
)
HTTP_ANSWER = {
    "status": 200,
    "headers": {"content-type": "application/json"},
    "body": {"owner": "carol"},
}

SCENARIOS: dict[str, tuple[Any, ...]] = {
    "trigger": (
        process(([el("start", "trigger"), el("done", "end")], [edge("start", "done")])),
        {"lead": "bob"},
        None,
    ),
    "transform": (
        process(
            (
                [
                    el("start", "trigger"),
                    el(
                        "shape",
                        "transform",
                        output={"who": "input.name", "cents": "input.eur * 100"},
                    ),
                    el("label", "transform", expression="input.who + ': ' + string(input.cents)"),
                    el("done", "end"),
                ],
                [edge("start", "shape"), edge("shape", "label"), edge("label", "done")],
            )
        ),
        {"name": "bob", "eur": 12},
        None,
    ),
    "condition": (CONTRACT_EXAMPLE, {"amount": 120}, None),
    "join": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("vip", "condition", expression="input.amount > 1000"),
                    el("gold", "transform", output={"tier": "'gold'"}),
                    el("basic", "transform", output={"tier": "'basic'"}),
                    el("fee", "transform", output={"fee": "input.amount / 10"}),
                    el("both", "join"),
                    el("done", "end"),
                ],
                [
                    edge("start", "vip"),
                    edge("start", "fee"),
                    edge("vip", "gold", "true"),
                    edge("vip", "basic", "false"),
                    edge("gold", "both"),
                    edge("basic", "both"),
                    edge("fee", "both"),
                    edge("both", "done"),
                ],
            )
        ),
        {"amount": 250},
        None,
    ),
    "end": (
        process(
            ([el("a", "trigger"), el("first", "end")], [edge("a", "first")]),
            (
                [
                    el("b", "trigger"),
                    el("n", "transform", expression="input.n + 1"),
                    el("second", "end"),
                ],
                [edge("b", "n"), edge("n", "second")],
            ),
        ),
        {"n": 1},
        None,
    ),
    "fail": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("ok", "condition", expression="input.amount >= 0"),
                    el("done", "end"),
                    el("refuse", "fail", message="amount {{ input.amount }} is negative"),
                ],
                [edge("start", "ok"), edge("ok", "done", "true"), edge("ok", "refuse", "false")],
            )
        ),
        {"amount": -5},
        None,
    ),
    "fail_message_unrenderable": (
        process(
            (
                [el("start", "trigger"), el("refuse", "fail", message="no {{ input.missing }}")],
                [edge("start", "refuse")],
            )
        ),
        {},
        None,
    ),
    "delay": (
        process(
            (
                [el("start", "trigger"), el("pause", "delay", seconds=3600), el("done", "end")],
                [edge("start", "pause"), edge("pause", "done")],
            )
        ),
        {"remind": "bob"},
        None,
    ),
    "delay_cancelled": (
        process(
            (
                [el("start", "trigger"), el("pause", "delay", seconds=3600), el("done", "end")],
                [edge("start", "pause"), edge("pause", "done")],
            )
        ),
        {"remind": "bob"},
        None,
        True,
    ),
    "http": (
        HTTP,
        {"id": 42, "name": "bob", "amount": 120},
        {"call": [Failure("503 Service Unavailable"), HTTP_ANSWER]},
    ),
    "http_error_port": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("call", "http", url="https://crm.example", retry={"max_attempts": 2}),
                    el("ok", "end"),
                    el("fallback", "end"),
                ],
                [edge("start", "call"), edge("call", "ok"), edge("call", "fallback", "error")],
            )
        ),
        {},
        {"call": [Failure("timed out after 5 s"), Failure("timed out after 5 s")]},
    ),
    "sliced_chain": (
        process(
            (
                [
                    el("start", "trigger"),
                    *(el(f"t{i}", "transform", expression="input + 1") for i in range(260)),
                    el("done", "end"),
                ],
                [
                    edge("start", "t0"),
                    *(edge(f"t{i}", f"t{i + 1}") for i in range(259)),
                    edge("t259", "done"),
                ],
            )
        ),
        0,
        None,
    ),
    "over_budget_error_port": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("dear", "transform", expression="input.l.all(a, input.l.all(b, true))"),
                    el("ok", "end"),
                    el("caught", "end"),
                ],
                [edge("start", "dear"), edge("dear", "ok"), edge("dear", "caught", "error")],
            )
        ),
        {"l": list(range(400))},
        None,
    ),
    "result_too_large": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("grow", "transform", expression=" + ".join(["input.s"] * 300)),
                    el("done", "end"),
                ],
                [edge("start", "grow"), edge("grow", "done")],
            )
        ),
        {"s": "x" * 4_000},
        None,
    ),
    "signal": (
        process(
            (
                [
                    el("start", "trigger"),
                    el(
                        "approve",
                        "signal",
                        name="approval",
                        timeout_s=3600,
                        schema={"type": "object", "required": ["ok"]},
                    ),
                    el("reminder", "signal", name="reminder", timeout_s=60),
                    el("approved", "end"),
                    el("unreminded", "end"),
                ],
                [
                    edge("start", "approve"),
                    edge("start", "reminder"),
                    edge("approve", "approved"),
                    edge("reminder", "unreminded", "error"),
                ],
            )
        ),
        {"lead": "bob"},
        None,
        False,
        [("approval", {"ok": True}, "carol")],
    ),
    "subprocess": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("score", "subprocess", process_id=CHILD, input="{'lead': input.name}"),
                    el("done", "end"),
                ],
                [edge("start", "score"), edge("score", "done")],
            )
        ),
        {"name": "bob"},
        {"score": [{"score": 7}]},
    ),
    "subprocess_error_port": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("score", "subprocess", process_id=CHILD, version=2),
                    el("done", "end"),
                    el("unscored", "end"),
                ],
                [
                    edge("start", "score"),
                    edge("score", "done"),
                    edge("score", "unscored", "error"),
                ],
            )
        ),
        {"name": "bob"},
        {"score": [Failure("lead not found")]},
    ),
    "foreach": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("each", "foreach", items="input.leads", process_id=CHILD, concurrency=2),
                    el("done", "end"),
                ],
                [edge("start", "each"), edge("each", "done")],
            )
        ),
        {"leads": ["ann", "bob", "cid"]},
        {"each": [{"score": 3}, {"score": 7}, {"score": 5}]},
    ),
    "agent": (
        process(
            (
                [
                    el("start", "trigger"),
                    el("ask", "agent", agent_id="agent-1", prompt="Qualify {{ input.name }}"),
                    el("done", "end"),
                ],
                [edge("start", "ask"), edge("ask", "done")],
            )
        ),
        {"name": "bob"},
        {
            "ask": [
                {
                    "text": "Qualified.",
                    "model": "fake-1",
                    "usage": {"prompt_tokens": 9, "completion_tokens": 2},
                }
            ]
        },
    ),
}


# --- committed histories replay deterministically -------------------------------------


def committed() -> list[Path]:
    return sorted(p for p in HISTORIES.glob("*.json"))


def test_every_element_type_has_a_committed_history():
    used = {
        element["type"]
        for path in committed()
        for thread in _load(path).definition["threads"]
        for element in thread["elements"]
    }

    assert used >= set(ELEMENT_TYPES)


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
def test_a_committed_history_replays_deterministically(path):
    history = _load(path)

    report = replay("ex-1", _compile(history.definition), history.events)

    assert report.deterministic, report.divergence
    assert report.events == len(history.events)


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
def test_a_committed_history_ends_the_execution(path):
    history = _load(path)

    execution = Execution.rebuild("ex-1", _compile(history.definition), history.events)

    assert execution.finished
    assert execution.seq == len(history.events)


# --- histories that must diverge ------------------------------------------------------


def test_a_history_whose_condition_port_was_flipped_diverges_at_that_event():
    history = _load(DIVERGENT / "condition_flipped.json")

    report = replay("ex-1", _compile(history.definition), history.events)

    assert not report.deterministic
    divergence = report.divergence
    assert divergence is not None
    assert divergence.seq == 7
    assert divergence.expected is not None and divergence.decided is not None
    assert (divergence.expected["element"], divergence.expected["port"]) == ("big", "false")
    assert (divergence.decided["element"], divergence.decided["port"]) == ("big", "true")


def test_a_history_replayed_against_a_changed_definition_diverges_at_the_first_changed_decision():
    history = _load(HISTORIES / "condition.json")
    changed = msgspec.convert(history.definition, dict[str, Any])
    elements = changed["threads"][0]["elements"]
    big = next(e for e in elements if e["key"] == "big")
    big["params"] = {"expression": "input.score > 1000"}

    report = replay("ex-1", _compile(changed), history.events)

    assert report.divergence is not None
    assert report.divergence.seq == 7
    assert report.divergence.reason == "the decision differs"


def test_a_history_with_an_answer_the_code_never_asked_for_diverges():
    history = _load(HISTORIES / "http.json")
    stray = NodeCompleted(at=T0, actor=ENGINE, element="done", output={})

    report = replay("ex-1", _compile(history.definition), [*history.events[:-1], stray])

    assert report.divergence is not None
    assert report.divergence.seq == len(history.events)


def test_a_history_that_does_not_start_with_execution_started_diverges_at_the_first_event():
    history = _load(HISTORIES / "trigger.json")

    report = replay("ex-1", _compile(history.definition), history.events[1:])

    assert report.divergence is not None
    assert report.divergence.seq == 1


# --- mid-flight histories and nothing outside -----------------------------------------


@pytest.mark.parametrize("name", ["http", "delay", "join", "http_error_port"])
def test_a_history_caught_mid_flight_is_still_deterministic(name):
    history = _load(HISTORIES / f"{name}.json")
    graph = _compile(history.definition)

    for end in range(1, len(history.events)):
        report = replay("ex-1", graph, history.events[:end])
        assert report.deterministic, (end, report.divergence)


def test_a_replay_reads_effect_answers_from_the_history_and_calls_nothing(monkeypatch):
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a replay opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    history = _load(HISTORIES / "http.json")
    graph = _compile(history.definition)
    # The same history, but the CRM had answered another owner: what the replay
    # decides after the call follows the answer the history holds, not a fresh one.
    answered_dave = [
        msgspec.structs.replace(e, output=HTTP_ANSWER | {"body": {"owner": "dave"}})
        if isinstance(e, NodeCompleted) and e.element == "call"
        else e
        for e in history.events
    ]

    report = replay("ex-1", graph, history.events)
    rebuilt = Execution.rebuild("ex-1", graph, history.events)
    dave = replay("ex-1", graph, answered_dave)

    assert report.deterministic
    assert rebuilt.nodes["call"].output == HTTP_ANSWER
    assert rebuilt.nodes["call"].attempts == 2
    assert rebuilt.output == {"done": "carol"}
    assert dave.divergence is not None  # it decided "dave" where the history says "carol"
    assert dave.divergence.decided is not None
    assert dave.divergence.decided["element"] == "owner"


def test_the_recorder_retries_waits_and_answers_like_the_engine():
    events = record(
        HTTP,
        {"id": 1, "name": "x", "amount": 1},
        {"call": [Failure("503"), Failure("503"), HTTP_ANSWER]},
    )
    graph = _compile(HTTP)

    assert replay("ex-1", graph, events).deterministic
    assert Execution.rebuild("ex-1", graph, events).nodes["call"].attempts == 3
