"""The committed history of a rerun from the middle replays, and one whose reused output
was changed diverges at that output. Pure: no I/O (the live reruns are in
tests/integration/test_rerun.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from domain.definition import compile_definition, parse_definition
from domain.events import AnyEvent, ExecutionStarted
from domain.history.replay import replay

HISTORY = Path(__file__).resolve().parents[1] / "histories" / "rerun_from_middle.json"


class History(msgspec.Struct):
    definition: dict[str, Any]
    events: list[AnyEvent]


def test_the_committed_rerun_history_replays_and_a_changed_reused_output_diverges() -> None:
    history = msgspec.json.decode(HISTORY.read_bytes(), type=History)
    graph = compile_definition(parse_definition(history.definition))
    started = history.events[0]
    assert isinstance(started, ExecutionStarted) and started.from_element == "shape"
    reused = dict(started.reused)
    reused["fetch"] = {**reused["fetch"], "output": {"status": 200, "body": {"score": 1}}}
    tampered = [msgspec.structs.replace(started, reused=reused), *history.events[1:]]

    assert replay("ex-1", graph, history.events).deterministic
    report = replay("ex-1", graph, tampered)

    assert report.divergence is not None
    assert report.divergence.expected is not None
    assert (report.divergence.expected["type"], report.divergence.expected["element"]) == (
        "NodeCompleted",
        "fetch",
    )
