"""Properties of the orchestrator over random valid DAGs of pure elements and inputs."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.definition import Graph, compile_definition, parse_definition
from domain.events import (
    Event,
    ExecutionCompleted,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
)
from domain.execution import Execution
from domain.history.replay import replay
from projections.status import empty_status, fold_status

T0 = "2024-05-01T09:00:00.000000Z"
PORTS = {
    "trigger": ("out",),
    "transform": ("out",),
    "condition": ("true", "false"),
    "join": ("out",),
}
RUNS = settings(max_examples=150, deadline=None)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    """A trigger, then elements each wired to earlier ones, so the graph is acyclic and
    everything is reachable from the trigger. `carries_n` tracks whose output has `n`
    (a join's output is a map of upstream keys, so what follows one looks elsewhere)."""
    elements: list[dict[str, Any]] = [{"key": "n0", "type": "trigger"}]
    connections: list[dict[str, Any]] = []
    kinds = {"n0": "trigger"}
    carries_n = {"n0": True}
    for i in range(1, draw(st.integers(1, 14)) + 1):
        key = f"n{i}"
        slots = [(s, p) for s, kind in kinds.items() if kind in PORTS for p in PORTS[kind]]
        kind = draw(st.sampled_from(["transform", "condition", "join", "end"]))
        if kind == "join" and len(slots) < 2:
            kind = "transform"
        if kind == "join":
            incoming = draw(st.lists(st.sampled_from(slots), min_size=2, max_size=3, unique=True))
        else:
            incoming = [draw(st.sampled_from(slots))]
        source_has_n = carries_n[incoming[0][0]]
        element: dict[str, Any] = {"key": key, "type": kind}
        if kind == "transform":
            a, b = draw(st.integers(1, 3)), draw(st.integers(-5, 5))
            base = "input.n" if source_has_n else "size(input)"
            element["params"] = {"output": {"n": f"{base} * {a} + {b}"}}
        elif kind == "condition":
            m = draw(st.integers(2, 5))
            r = draw(st.integers(0, m - 1))
            base = "input.n" if source_has_n else "execution.input.n"
            element["params"] = {"expression": f"{base} % {m} == {r}"}
        elements.append(element)
        kinds[key] = kind
        carries_n[key] = kind == "transform" or (kind == "condition" and source_has_n)
        for source, port in incoming:
            connection = {"source": source, "target": key}
            if port != "out":
                connection["source_port"] = port
            connections.append(connection)
    return {
        "project": "P",
        "app": "A",
        "name": "random",
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


inputs = st.integers(-1000, 1000).map(lambda n: {"n": n})


def compiled(definition: dict[str, Any]) -> Graph:
    return compile_definition(parse_definition(definition))


def run(graph: Graph, input: Any) -> tuple[Execution, list[Event]]:
    started = ExecutionStarted(at=T0, actor="prop", process_id="p", version=1, input=input)
    return Execution.start("ex-prop", graph, started)


def first_index(events: list[Event], key: str, kinds: tuple[type[Event], ...]) -> int:
    return next(
        i
        for i, e in enumerate(events)
        if isinstance(e, kinds) and getattr(e, "element", None) == key
    )


def resolved_at(events: list[Event], key: str) -> int:
    """Where the element's fate was recorded: completed, skipped or finally failed."""
    return next(
        i
        for i, e in enumerate(events)
        if getattr(e, "element", None) == key
        and (
            isinstance(e, NodeCompleted | NodeSkipped)
            or (isinstance(e, NodeFailed) and e.retry_at is None)
        )
    )


@RUNS
@given(definitions(), inputs)
def test_every_random_dag_completes_with_each_element_completed_or_skipped(definition, input):
    execution, events = run(compiled(definition), input)

    assert execution.status == "completed"
    assert isinstance(events[-1], ExecutionCompleted)
    states = {key: node.state for key, node in execution.nodes.items()}
    assert set(states.values()) <= {"completed", "skipped"}, states


@RUNS
@given(definitions(), inputs)
def test_each_element_runs_or_is_skipped_exactly_once(definition, input):
    graph = compiled(definition)
    _, events = run(graph, input)

    for key in graph.nodes:
        decisions = [
            e for e in events if isinstance(e, NodeExecuting | NodeSkipped) and e.element == key
        ]
        assert len(decisions) == 1, (key, decisions)


@RUNS
@given(definitions(), inputs)
def test_no_join_or_other_element_starts_before_all_its_sources_are_completed_or_skipped(
    definition, input
):
    graph = compiled(definition)
    _, events = run(graph, input)

    for key, incoming in graph.incoming.items():
        if not incoming:
            continue
        began = first_index(events, key, (NodeExecuting, NodeSkipped))
        for source, _ in incoming:
            assert resolved_at(events, source) < began, (source, key)


@RUNS
@given(definitions(), inputs)
def test_an_element_is_skipped_exactly_when_no_incoming_branch_is_live(definition, input):
    graph = compiled(definition)
    execution, _ = run(graph, input)

    for key, incoming in graph.incoming.items():
        if not incoming:
            continue
        live = [
            source
            for source, port in incoming
            if execution.nodes[source].state == "completed" and execution.nodes[source].port == port
        ]
        assert (execution.nodes[key].state == "skipped") == (not live), key
        if graph.nodes[key].kind.is_join and live:
            assert execution.nodes[key].output == {s: execution.outputs[s] for s in live}


@RUNS
@given(definitions(), inputs)
def test_running_twice_decides_the_same_events(definition, input):
    _, first = run(compiled(definition), input)
    _, second = run(compiled(definition), input)

    assert first == second


@RUNS
@given(definitions(), inputs)
def test_replaying_a_run_finds_it_deterministic(definition, input):
    graph = compiled(definition)
    _, events = run(graph, input)

    report = replay("ex-prop", graph, events)

    assert report.deterministic, report.divergence
    assert report.events == len(events)


@RUNS
@given(definitions(), inputs)
def test_the_status_projection_agrees_with_the_aggregate(definition, input):
    graph = compiled(definition)
    execution, events = run(graph, input)

    doc = empty_status("ex-prop")
    for seq, event in enumerate(events, start=1):
        fold_status(doc, seq, event)

    assert doc.status == execution.status
    assert doc.output == execution.output
    assert doc.position == execution.seq == len(events)
    for key, node in execution.nodes.items():
        projected = doc.nodes.get(key)
        assert (projected.state if projected else "pending") == node.state, key
        if node.state == "completed":
            assert projected is not None and projected.output == node.output, key
