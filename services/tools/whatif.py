"""`loom what-if`: an execution's recorded facts through another version or a file.

The comparison itself is pure (`domain.history.what_if`); this reads the history
and the definitions, from the store or a JSON file.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from domain.definition import Graph, compile_definition, parse_definition
from domain.errors import DomainError
from domain.events import ExecutionStarted
from domain.history.what_if import Reached, WhatIfRefused, WhatIfReport, compare
from services.tools.history import Histories, ToolError

__all__ = ["Reached", "WhatIfReport", "compare", "definition_from_file", "what_if"]


def definition_from_file(path: str) -> Graph:
    """A graph from a JSON file holding a process definition (as POSTed, or as read back)."""
    try:
        data = msgspec.json.decode(Path(path).read_bytes())
    except OSError as exc:
        raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from None
    except msgspec.DecodeError as exc:
        raise ToolError(f"{path} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("definition"), dict):
        data = data["definition"]
    if not isinstance(data, dict):
        raise ToolError(f"{path} does not hold a process definition (a JSON object)")
    body = {"project": "what-if", "app": "what-if", "name": "what-if"}
    body.update({k: v for k, v in data.items() if k in ("project", "app", "name", "threads")})
    try:
        return compile_definition(parse_definition(body))
    except DomainError as exc:
        problems = getattr(exc, "problems", None) or [exc]
        listed = "; ".join(
            f"{p.detail}" + (f" (element {p.key})" if getattr(p, "key", None) else "")
            for p in problems
        )
        raise ToolError(f"{path}: the definition is not valid: {listed}") from None


def what_if(
    histories: Histories,
    tenant: str,
    execution_id: str,
    *,
    version: int | None = None,
    definition_file: str | None = None,
) -> WhatIfReport:
    """Replay the execution's recorded facts through `version` of its process or a file."""
    history = [r.event for r in histories.events(tenant, execution_id)]
    started = history[0]
    assert isinstance(started, ExecutionStarted)
    recorded = histories.graph(tenant, started)
    if definition_file is not None:
        graph, against = definition_from_file(definition_file), definition_file
    elif version is not None:
        if version < 1:
            raise ToolError(f"--version must be 1 or more, got {version}")
        graph, against = histories.graph(tenant, started, version), f"version {version}"
    else:
        raise ToolError("what-if needs --version N or --definition FILE")
    try:
        return compare(execution_id, recorded, graph, history, against)
    except WhatIfRefused as exc:
        raise ToolError(exc.detail) from None
