"""Expressions priced before they run; results capped before they are recorded; long runs
of pure elements pausing for others, and replaying all the same."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from typing import Any

import pytest

from domain.definition import compile_definition, parse_definition
from domain.errors import DefinitionInvalid, ExpressionError
from domain.events import ExecutionCompleted, ExecutionFailed, NodeCompleted, NodeFailed
from domain.execution import SLICE_ELEMENTS, Execution
from domain.expressions import OVER_BUDGET, Expression, Scope
from domain.history.replay import replay
from domain.limits import ValueTooLarge
from tests.support import definition, edge, el
from tests.unit.test_execution import graph_of, run, started, steps, the

NESTED = "input.l.all(a, input.l.all(b, true))"


def evaluate(source: str, input: Any) -> Any:
    return Expression(source).evaluate(Scope(input, None, {}))


def transform_then_end(expression: str, *, error_port: bool = False) -> Any:
    elements = [
        el("start", "trigger"),
        el("t", "transform", expression=expression),
        el("done", "end"),
    ]
    connections = [edge("start", "t"), edge("t", "done")]
    if error_port:
        elements.append(el("caught", "end"))
        connections.append(edge("t", "caught", "error"))
    return graph_of((elements, connections))


# --- the budget -------------------------------------------------------------------------


def test_a_loop_inside_a_loop_over_a_long_list_is_refused_without_running() -> None:
    # 4,500 numbers: 20 million iterations, 4.7 s of a frozen server before the budget.
    began = time.perf_counter()
    with pytest.raises(ExpressionError) as refused:
        evaluate(NESTED, {"l": list(range(4500))})
    assert refused.value.detail.startswith(OVER_BUDGET)
    assert time.perf_counter() - began < 0.5  # refused on its price, not after the work


def test_the_same_loop_over_a_short_list_runs() -> None:
    assert evaluate(NESTED, {"l": list(range(100))}) is True
    assert evaluate("input.l.map(x, x * 2)", {"l": [1, 2, 3]}) == [2, 4, 6]
    assert evaluate(
        "input.l.filter(r, r.v > 1).map(r, r.name)",
        {"l": [{"name": "a", "v": 1}, {"name": "b", "v": 2}]},
    ) == ["b"]


def test_the_price_depends_on_the_list_iterated_not_on_the_rest_of_the_input() -> None:
    # A large string beside a short list: the loop over the list is cheap.
    assert evaluate("input.l.map(x, x + 1)", {"l": [1, 2], "s": "x" * 200_000}) == [2, 3]


def test_a_map_that_would_build_hundreds_of_megabytes_is_refused_before_it_builds_them() -> None:
    # 400 copies of a 500 KB string: 200 MB (it peaked at 802 MB before the budget).
    tracemalloc.start()
    try:
        with pytest.raises(ExpressionError) as refused:
            evaluate("input.l.map(a, input.s)", {"l": list(range(400)), "s": "x" * 500_000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.detail.startswith(OVER_BUDGET)
    assert peak < 20 << 20


def test_a_template_that_assembles_too_much_is_refused() -> None:
    from domain.expressions import Template

    template = Template("{{ input.s }}" * 10)
    with pytest.raises(ExpressionError) as refused:
        template.render(Scope({"s": "x" * 600_000}, None, {}))
    assert refused.value.detail.startswith(OVER_BUDGET)


def test_an_expression_too_dear_on_any_input_is_refused_when_the_process_is_saved() -> None:
    literal = "[" + ",".join(["1"] * 300) + "]"
    dear = f"{literal}.all(a, {literal}.all(b, {literal}.all(c, true)))"
    body = definition(
        (
            [el("start", "trigger"), el("t", "transform", expression=dear)],
            [edge("start", "t")],
        )
    )
    with pytest.raises(DefinitionInvalid) as refused:
        compile_definition(parse_definition(body))
    assert OVER_BUDGET in refused.value.detail and refused.value.key == "t"


def test_an_expression_over_budget_fails_its_element_and_the_error_port_applies() -> None:
    events = run(transform_then_end(NESTED, error_port=True), {"l": list(range(4500))})
    assert the(events, NodeFailed, "t").error.startswith(OVER_BUDGET)
    assert the(events, NodeCompleted, "caught").output["error"].startswith(OVER_BUDGET)
    assert isinstance(events[-1], ExecutionCompleted)


def test_a_cheap_expression_is_priced_in_microseconds() -> None:
    expression = Expression("input.amount * 2 + size(input.name)")
    scope = Scope({"amount": 21, "name": "ada"}, None, {})
    began = time.perf_counter()
    for _ in range(1000):
        expression.evaluate(scope)
    # Pricing included: well under the 50 µs an element may take in the engine's chain.
    assert (time.perf_counter() - began) / 1000 < 50e-6


# --- every result capped --------------------------------------------------------------


def test_a_string_result_over_the_limit_fails_the_element_and_is_not_recorded() -> None:
    # 30 copies of 100 KB: 3 MB (it completed and was stored before the cap covered strings).
    events = run(transform_then_end(" + ".join(["input.s"] * 30)), {"s": "x" * 100_000})
    failed = the(events, NodeFailed, "t")
    assert "over the limit of 1 MiB" in failed.error
    assert isinstance(events[-1], ExecutionFailed)
    assert not any(isinstance(e, NodeCompleted) and e.element == "t" for e in events)


@pytest.mark.parametrize(
    "expression",
    [
        "input.l + input.l + input.l",  # a list
        '{"a": input.s, "b": input.s, "c": input.s}',  # a map
        "input.s + input.s + input.s",  # a string
    ],
)
def test_a_result_of_any_type_over_the_limit_fails_the_element(expression: str) -> None:
    events = run(transform_then_end(expression), {"s": "y" * 400_000, "l": ["z" * 400_000]})
    assert "over the limit of 1 MiB" in the(events, NodeFailed, "t").error


def test_an_effect_answer_over_the_limit_fails_its_element_without_a_retry() -> None:
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("call", "http", url="http://example.test/", retry={"max_attempts": 3}),
                el("done", "end"),
            ],
            [edge("start", "call"), edge("call", "done")],
        )
    )
    execution, _ = Execution.start("ex-1", graph, started())
    events = execution.complete("call", 1, {"body": "b" * (2 << 20)}, started().at, "engine")
    failed = the(events, NodeFailed, "call")
    assert "over the limit" in failed.error and failed.retry_at is None
    assert isinstance(events[-1], ExecutionFailed)


def test_an_execution_input_over_the_limit_starts_nothing() -> None:
    with pytest.raises(ValueTooLarge) as refused:
        run(transform_then_end("input"), {"s": "x" * (2 << 20)})
    assert "the execution's input" in refused.value.detail


# --- long runs of pure elements pause for others ------------------------------------------


def chain(length: int, expression: str = "input + 1") -> Any:
    elements = [el("start", "trigger")]
    elements += [el(f"t{i}", "transform", expression=expression) for i in range(length)]
    elements.append(el("done", "end"))
    keys = [e["key"] for e in elements]
    return graph_of((elements, [edge(a, b) for a, b in itertools.pairwise(keys)]))


def test_a_long_chain_pauses_after_a_slice_and_goes_on_where_it_paused() -> None:
    graph = chain(SLICE_ELEMENTS * 2)
    execution, events = Execution.start("ex-1", graph, started(0))
    assert execution.yielded and execution.status == "running"
    ran = [e for e in events if isinstance(e, NodeCompleted)]
    assert len(ran) == SLICE_ELEMENTS
    history = list(events)
    while execution.yielded:
        history += execution.advance(started().at, "engine")
    assert isinstance(history[-1], ExecutionCompleted)
    assert history[-1].output == {"done": SLICE_ELEMENTS * 2}


def test_a_chain_of_dear_expressions_pauses_sooner() -> None:
    dear = "input.l.all(a, input.l.all(b, true)) ? input : input"
    graph = chain(20, dear)
    execution, events = Execution.start("ex-1", graph, started({"l": list(range(250))}))
    completed = [e for e in events if isinstance(e, NodeCompleted) and e.element != "start"]
    assert execution.yielded and 0 < len(completed) < 20


def test_a_paused_history_replays_deterministically_even_with_an_answer_between_slices() -> None:
    graph = graph_of(
        (
            [
                el("start", "trigger"),
                el("call", "http", url="http://example.test/"),
                el("after", "end"),
            ],
            [edge("start", "call"), edge("call", "after")],
        ),
        (
            [
                el("s2", "trigger"),
                *[el(f"p{i}", "transform", expression="input") for i in range(300)],
                el("e2", "end"),
            ],
            [
                edge("s2", "p0"),
                *[edge(f"p{i}", f"p{i + 1}") for i in range(299)],
                edge("p299", "e2"),
            ],
        ),
    )
    execution, history = Execution.start("ex-1", graph, started({"x": 1}))
    assert execution.yielded
    # The effect answers before the engine goes on with the paused thread.
    history += execution.complete("call", 1, {"status": 200}, started().at, "engine")
    while execution.yielded:
        history += execution.advance(started().at, "engine")
    assert isinstance(history[-1], ExecutionCompleted), steps(history)[-3:]
    assert replay("ex-1", graph, history).deterministic
