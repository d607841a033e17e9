"""Time travel: an execution as it stood after any one of its events.

The orchestrator's state is a pure fold of the events, so folding the first
`at` of them rebuilds exactly what the engine held then: the stack (what runs
next), each element's state, attempts and output, the effects in flight and the
timers waiting. Served by `loom state` and `GET /api/v1/executions/{id}/state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.definition import Graph
from domain.events import Event, event_type
from domain.execution import Execution


class StateRefused(ValueError):
    """`at` does not name an event of the execution, or the history cannot be folded."""


def state_at(
    execution_id: str, graph: Graph, history: Sequence[Event], at: int | None = None
) -> dict[str, Any]:
    """The state after event `at` (1-based; default: the last event)."""
    total = len(history)
    seq = total if at is None else at
    if not 1 <= seq <= total:
        raise StateRefused(f"at must be between 1 and {total} (the execution's events), got {seq}")
    try:
        execution = Execution.rebuild(execution_id, graph, list(history[:seq]))
    except Exception as exc:  # a history today's definition cannot fold
        raise StateRefused(f"the history cannot be folded up to event {seq}: {exc}") from None
    last = history[seq - 1]
    return {
        "execution_id": execution_id,
        "at": seq,
        "events": total,
        "event": {
            "seq": seq,
            "type": event_type(last),
            "at": last.at,
            "actor": last.actor,
            "element": getattr(last, "element", None),
        },
        "status": execution.status,
        "stack": list(reversed(execution.stack)),
        "nodes": {
            key: {
                "state": run.state,
                "attempts": run.attempts,
                "output": run.output,
                "port": run.port,
                "error": run.error,
                "wake_at": run.wake_at,
            }
            for key, run in execution.nodes.items()
        },
        "outputs": dict(execution.outputs),
        "output": execution.output if execution.status == "completed" else None,
        "error": execution.error,
        "in_flight": [
            {"element": key, "attempt": attempt, "request": request}
            for key, attempt, request in execution.in_flight()
        ],
        "timers": [{"element": key, "wake_at": wake_at} for key, wake_at in execution.timers()],
    }
