"""Re-run from an element: what a new execution reuses from an earlier one.

Everything upstream of the chosen element that the earlier execution got past
(completed, or failed into an error branch) is reused with its recorded output
and port, so no side effect before that element runs again; the element itself
and everything else runs live.
"""

from __future__ import annotations

from typing import Any

from domain.definition import ERROR_PORT, Graph
from domain.errors import DomainError
from domain.execution import Execution


class RerunRefused(DomainError):
    """The re-run cannot be planned; `keys` names the elements concerned."""

    def __init__(self, detail: str, keys: list[str]) -> None:
        super().__init__(detail, keys[0] if keys else None)
        self.keys = keys


def plan_rerun(
    original: Execution, target: Graph, from_key: str, fresh_input: bool = False
) -> dict[str, Any]:
    """The `reused` map of a re-run of `original` from `from_key` on the `target` graph.

    With `fresh_input`, triggers are not reused: they output the new input (they have
    no side effects). Raises RerunRefused when `from_key` is not in `target`, or when
    `target` lacks elements whose recorded outputs the re-run would reuse.
    """
    if from_key not in target.nodes:
        raise RerunRefused(f"element {from_key!r} is not in the chosen version", [from_key])
    upstream = _ancestors(target, from_key)
    if from_key in original.graph.nodes:
        upstream |= _ancestors(original.graph, from_key)
    reused: dict[str, Any] = {}
    for key in dict.fromkeys([*original.graph.nodes, *target.nodes]):
        recorded = _recorded(original, key) if key in upstream else None
        if recorded is None:
            continue
        if fresh_input and original.graph.nodes[key].kind.name == "trigger":
            continue
        reused[key] = recorded
    missing = [key for key in reused if key not in target.nodes]
    if missing:
        names = ", ".join(repr(key) for key in missing)
        raise RerunRefused(
            f"the chosen version lacks {names}, whose recorded output the re-run from "
            f"{from_key!r} would reuse",
            missing,
        )
    return reused


def _ancestors(graph: Graph, key: str) -> set[str]:
    seen: set[str] = set()
    todo = [source for source, _ in graph.incoming.get(key, [])]
    while todo:
        source = todo.pop()
        if source not in seen:
            seen.add(source)
            todo += [s for s, _ in graph.incoming.get(source, [])]
    return seen


def _recorded(original: Execution, key: str) -> dict[str, Any] | None:
    run = original.nodes.get(key)
    if run is None:
        return None
    if run.state == "completed":
        return {"output": run.output, "port": run.port or "out"}
    if run.state == "failed" and key in original.graph.catches_errors:
        return {"output": {"error": run.error, "attempts": run.attempts}, "port": ERROR_PORT}
    return None
