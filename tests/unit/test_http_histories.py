"""The committed histories of the `http` element's cancel and timeout behaviours replay
deterministically at every point, and altered ones diverge where they were altered.

Recorded by tests/integration/test_http_element_timing.py's behaviours; pure: no I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.definition import Graph, compile_definition, parse_definition
from domain.events import AnyEvent, EffectDiscarded, Event, ExecutionFailed, ExecutionStarted
from domain.history.replay import replay

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


class History(msgspec.Struct):
    definition: dict[str, Any]
    events: list[AnyEvent]


def committed(name: str) -> tuple[Graph, list[Event]]:
    history = msgspec.json.decode((HISTORIES / f"{name}.json").read_bytes(), type=History)
    return compile_definition(parse_definition(history.definition)), list(history.events)


@pytest.mark.parametrize("name", ["http_cancelled_discarded", "http_execution_timeout"])
def test_a_committed_history_replays_deterministically_at_every_point(name: str) -> None:
    graph, history = committed(name)

    for end in range(1, len(history) + 1):
        report = replay("ex-1", graph, history[:end])
        assert report.deterministic, (end, report.divergence)


def test_a_discarded_answer_for_an_attempt_never_in_flight_diverges() -> None:
    graph, history = committed("http_cancelled_discarded")
    discarded = history[-1]
    assert isinstance(discarded, EffectDiscarded)

    report = replay("ex-1", graph, [*history[:-1], msgspec.structs.replace(discarded, attempt=2)])

    assert report.divergence is not None
    assert report.divergence.seq == len(history)


def test_an_execution_timeout_that_history_never_set_diverges() -> None:
    graph, history = committed("http_execution_timeout")
    started = history[0]
    assert isinstance(started, ExecutionStarted) and started.timeout_s == 30
    timed_out = next(i for i, e in enumerate(history) if isinstance(e, ExecutionFailed))

    report = replay("ex-1", graph, [msgspec.structs.replace(started, timeout_s=None), *history[1:]])

    assert report.divergence is not None
    assert report.divergence.seq == timed_out + 1
