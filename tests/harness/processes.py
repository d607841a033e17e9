"""Processes the tests save and run through the services (not over HTTP).

A one-thread process whose trigger is `start`, given the elements after it and
the connections as (source, target[, port]) tuples.
"""

from __future__ import annotations

from typing import Any

from services.bootstrap import Loom

END = {"key": "done", "type": "end"}
CALL_THEN_END = [("start", "call"), ("call", "done")]


def one_thread(
    elements: list[dict[str, Any]],
    connections: list[tuple[str, ...]],
    project: str = "Ops",
    app: str = "World",
    name: str = "p",
) -> dict[str, Any]:
    """A process of one thread: `start` (a trigger), then `elements`."""
    edges = [
        {"source": c[0], "target": c[1], **({"source_port": c[2]} if len(c) > 2 else {})}
        for c in connections
    ]
    return {
        "project": project,
        "app": app,
        "name": name,
        "threads": [
            {
                "key": "main",
                "elements": [{"key": "start", "type": "trigger"}, *elements],
                "connections": edges,
            }
        ],
    }


async def save(
    loom: Loom, elements: list[dict[str, Any]], connections: list[tuple[str, ...]]
) -> str:
    """Save `one_thread(elements, connections)` as alice of acme; the process id."""
    saved = await loom.processes.save("acme", "alice", one_thread(elements, connections))
    return str(saved["process_id"])


async def run(
    loom: Loom, process_id: str, input: Any = None, timeout_s: float | None = None
) -> str:
    """Start the process as alice of acme; the execution id."""
    started = await loom.executions.start("acme", "alice", process_id, None, input, None, timeout_s)
    return started.execution_id


def call(url: str, **params: Any) -> dict[str, Any]:
    """An `http` element keyed `call`."""
    return {"key": "call", "type": "http", "params": {"url": url, **params}}
