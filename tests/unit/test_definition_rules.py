"""Every rule the contract names for refusing a definition, each naming the offending key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from domain.definition import Graph, compile_definition, parse_definition
from domain.errors import DefinitionInvalid
from domain.expressions import MAX_MACROS, MAX_SOURCE_CHARS
from tests.support import contract_example, el
from tests.support import edge as conn

CONTRACT_EXAMPLE: dict[str, Any] = contract_example()


def compile_(data: dict[str, Any]) -> Graph:
    return compile_definition(parse_definition(data))


def process(*threads: dict[str, Any]) -> dict[str, Any]:
    return {"project": "P", "app": "A", "name": "N", "threads": list(threads)}


def thread(
    elements: list[dict[str, Any]],
    connections: list[dict[str, Any]] | None = None,
    key: str = "main",
) -> dict[str, Any]:
    return {"key": key, "elements": elements, "connections": connections or []}


def after_trigger(element: dict[str, Any]) -> dict[str, Any]:
    """A one-thread process: a trigger connected to `element`."""
    return process(thread([el("start", "trigger"), element], [conn("start", element["key"])]))


def refusal(data: dict[str, Any]) -> DefinitionInvalid:
    with pytest.raises(DefinitionInvalid) as caught:
        compile_(data)
    return caught.value


def assert_refused_naming(data: dict[str, Any], key: str) -> DefinitionInvalid:
    error = refusal(data)
    assert key in {p.key for p in error.problems}, error.problems
    return error


# --- a valid definition ---------------------------------------------------------------


def test_the_contracts_example_compiles_into_a_graph_of_its_elements_and_ports():
    graph = compile_(CONTRACT_EXAMPLE)

    assert set(graph.nodes) == {"start", "score", "big", "yes", "no"}
    assert graph.triggers == ["start"]
    assert graph.outgoing["big"] == [("true", "yes"), ("false", "no")]
    assert graph.incoming["yes"] == [("big", "true")]


def test_name_and_position_of_an_element_are_accepted_and_ignored_by_the_engine():
    data = copy.deepcopy(CONTRACT_EXAMPLE)
    data["threads"][0]["elements"][0].update(name="Start here", position={"x": 10, "y": 20.5})

    assert compile_(data).triggers == ["start"]


# --- keys and connections -------------------------------------------------------------


def test_a_key_that_repeats_in_a_thread_is_refused_naming_it():
    data = process(
        thread(
            [el("start", "trigger"), el("x", "end"), el("x", "end")],
            [conn("start", "x")],
        )
    )
    error = assert_refused_naming(data, "x")
    assert "repeats" in error.detail


def test_a_key_that_repeats_across_threads_is_refused_naming_it():
    data = process(
        thread([el("a", "trigger"), el("shared", "end")], [conn("a", "shared")], key="one"),
        thread([el("b", "trigger"), el("shared", "end")], [conn("b", "shared")], key="two"),
    )
    error = assert_refused_naming(data, "shared")
    assert any("repeats" in p.detail for p in error.problems)


@pytest.mark.parametrize("missing_end", ["source", "target"])
def test_a_connection_naming_a_missing_element_is_refused_naming_that_element(missing_end):
    connection = {"source": "start", "target": "done", missing_end: "ghost"}
    data = process(thread([el("start", "trigger"), el("done", "end")], [connection]))

    error = assert_refused_naming(data, "ghost")
    assert "missing" in error.detail


def test_an_unknown_element_type_is_refused_naming_the_element():
    error = assert_refused_naming(after_trigger(el("mystery", "teleport")), "mystery")
    assert "teleport" in error.detail


# --- params that do not fit the type --------------------------------------------------


@pytest.mark.parametrize(
    ("element", "why"),
    [
        pytest.param(el("t", "transform"), "neither output nor expression", id="transform-none"),
        pytest.param(
            el("t", "transform", output={"a": "1"}, expression="2"),
            "both output and expression",
            id="transform-both",
        ),
        pytest.param(el("t", "condition"), "a condition without expression", id="condition"),
        pytest.param(el("t", "delay", seconds=-1), "negative seconds", id="delay-negative"),
        pytest.param(el("t", "delay"), "a delay without seconds", id="delay-missing"),
        pytest.param(el("t", "delay", seconds=5, minutes=1), "unknown field", id="delay-unknown"),
        pytest.param(el("t", "end", colour="red"), "end takes no params", id="end-unknown"),
        pytest.param(
            el("t", "http", url="https://x", method="TELEPORT"), "bad method", id="http-method"
        ),
        pytest.param(el("t", "agent", prompt="hi"), "agent without agent_id", id="agent"),
        pytest.param(
            el("t", "http", url="https://x", retry={"max_attempts": 0}),
            "retry with zero attempts",
            id="retry-zero",
        ),
    ],
)
def test_params_that_do_not_fit_the_type_are_refused_naming_the_element(element, why):
    error = assert_refused_naming(after_trigger(element), "t")
    assert "params do not fit" in error.detail, why


# --- expressions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "element",
    [
        pytest.param(el("bad", "transform", expression="input.amount *"), id="transform-expr"),
        pytest.param(el("bad", "transform", output={"a": "1 +"}), id="transform-output-map"),
        pytest.param(el("bad", "condition", expression="input.x >"), id="condition"),
        pytest.param(el("bad", "fail", message="no: {{ input.( }}"), id="fail-template"),
        pytest.param(el("bad", "http", url="https://x/{{ input.id + }}"), id="http-url"),
        pytest.param(el("bad", "http", url="https://x", body={"a": "{{ ) }}"}), id="http-body"),
        pytest.param(el("bad", "agent", agent_id="a1", prompt="{{ 1 + }}"), id="agent-prompt"),
    ],
)
def test_an_expression_that_does_not_compile_is_refused_naming_the_element(element):
    error = assert_refused_naming(after_trigger(element), "bad")
    assert "does not compile" in error.detail


def test_an_expression_longer_than_the_sandbox_allows_is_refused():
    source = "1 + " * (MAX_SOURCE_CHARS // 4) + "1"
    assert len(source) > MAX_SOURCE_CHARS

    error = assert_refused_naming(after_trigger(el("long", "transform", expression=source)), "long")
    assert "longer than" in error.detail


def test_an_expression_with_too_many_comprehension_macros_is_refused():
    source = "[1, 2]" + ".map(x, x + 1)" * (MAX_MACROS + 1)

    error = assert_refused_naming(after_trigger(el("deep", "transform", expression=source)), "deep")
    assert "comprehension macros" in error.detail


def test_an_expression_with_as_many_macros_as_the_sandbox_allows_compiles():
    source = "[1, 2]" + ".map(x, x + 1)" * MAX_MACROS

    graph = compile_(after_trigger(el("ok", "transform", expression=source)))
    assert "ok" in graph.nodes


# --- triggers -------------------------------------------------------------------------


def test_a_thread_without_a_trigger_is_refused_naming_the_thread():
    data = process(
        thread([el("start", "trigger"), el("end", "end")], [conn("start", "end")]),
        thread([el("lonely", "end")], key="orphan"),
    )
    error = assert_refused_naming(data, "orphan")
    assert "0 triggers" in error.detail


def test_a_thread_with_two_triggers_is_refused_naming_the_second():
    data = process(
        thread(
            [el("first", "trigger"), el("second", "trigger"), el("done", "end")],
            [conn("first", "done")],
        )
    )
    error = assert_refused_naming(data, "second")
    assert "2 triggers" in error.detail


def test_a_connection_into_a_trigger_is_refused_naming_the_trigger():
    data = process(
        thread([el("start", "trigger"), el("t", "transform", expression="1")], [conn("t", "start")])
    )
    assert_refused_naming(data, "start")


# --- condition ports ------------------------------------------------------------------


@pytest.mark.parametrize("port", [None, "out", "maybe"])
def test_a_condition_connection_without_a_true_or_false_port_is_refused_naming_it(port):
    data = process(
        thread(
            [el("start", "trigger"), el("big", "condition", expression="true"), el("e", "end")],
            [conn("start", "big"), conn("big", "e", port)],
        )
    )
    error = assert_refused_naming(data, "big")
    assert "'true' or 'false'" in error.detail


def test_a_condition_may_leave_by_its_error_port():
    data = process(
        thread(
            [el("start", "trigger"), el("big", "condition", expression="true"), el("e", "end")],
            [conn("start", "big"), conn("big", "e", "error")],
        )
    )
    assert compile_(data).outgoing["big"] == [("error", "e")]


def test_a_port_the_element_type_does_not_have_is_refused_naming_the_source():
    data = process(
        thread(
            [el("start", "trigger"), el("e", "end")],
            [conn("start", "e", "true")],
        )
    )
    assert_refused_naming(data, "start")


# --- cycles ---------------------------------------------------------------------------


def test_a_two_element_cycle_is_refused_naming_an_element_on_it():
    data = process(
        thread(
            [
                el("start", "trigger"),
                el("a", "transform", expression="input"),
                el("b", "transform", expression="input"),
            ],
            [conn("start", "a"), conn("a", "b"), conn("b", "a")],
        )
    )
    error = refusal(data)
    assert error.key in {"a", "b"}
    assert "cycle" in error.detail


def test_a_longer_cycle_is_refused_naming_an_element_on_it():
    ring = ["a", "b", "c", "d"]
    elements = [el("start", "trigger")] + [el(k, "transform", expression="input") for k in ring]
    connections = [conn("start", "a")] + [
        conn(src, dst) for src, dst in zip(ring, ring[1:] + ring[:1], strict=True)
    ]
    error = refusal(process(thread(elements, connections)))

    assert error.key in set(ring)
    assert "cycle" in error.detail


def test_an_element_connected_to_itself_is_a_cycle():
    data = process(
        thread(
            [el("start", "trigger"), el("a", "transform", expression="input")],
            [conn("start", "a"), conn("a", "a")],
        )
    )
    assert refusal(data).key == "a"


def test_a_diamond_is_not_a_cycle():
    data = process(
        thread(
            [
                el("start", "trigger"),
                el("left", "transform", expression="1"),
                el("right", "transform", expression="2"),
                el("both", "join"),
            ],
            [
                conn("start", "left"),
                conn("start", "right"),
                conn("left", "both"),
                conn("right", "both"),
            ],
        )
    )
    assert compile_(data).incoming["both"] == [("left", "out"), ("right", "out")]


# --- the whole definition -------------------------------------------------------------


def test_every_broken_rule_is_reported_not_only_the_first():
    data = process(
        thread(
            [
                el("start", "trigger"),
                el("odd", "teleport"),
                el("bad", "condition", expression="1 +"),
            ],
            [conn("start", "ghost")],
        )
    )
    error = refusal(data)

    assert {"odd", "bad", "ghost"} <= {p.key for p in error.problems}


def test_a_definition_that_does_not_fit_the_schema_is_refused_before_compiling():
    with pytest.raises(DefinitionInvalid) as caught:
        parse_definition({"project": "P", "app": "A", "name": "N", "threads": "not a list"})

    assert "schema" in caught.value.detail
