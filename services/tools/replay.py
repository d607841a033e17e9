"""`loom replay`: re-make every decision of an execution, or of a tenant's all, from history.

The orchestrator's commands are fed the recorded outside facts (effect answers,
timer firings, cancels) and what they decide is compared with what history
holds (`domain.history.replay`). Nothing outside is called. Replaying a whole tenant
is how a new version of Loom is checked before it ships: every execution must
still come out the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from domain.children import launched_children
from domain.events import ExecutionStarted
from domain.history.replay import Divergence, ReplayReport, replay
from services.tools.history import Histories, ToolError


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """One execution replayed: its divergence, or why it could not be replayed at all."""

    execution_id: str
    events: int
    divergence: Divergence | None = None
    error: str | None = None

    @property
    def deterministic(self) -> bool:
        return self.divergence is None and self.error is None


class TenantReport(msgspec.Struct, frozen=True, kw_only=True):
    executions: int
    events: int
    seconds: float
    failures: list[Outcome]  # every execution that diverged or could not be replayed

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int, int], None]  # (done, total, failed so far)


def replay_one(histories: Histories, tenant: str, execution_id: str) -> ReplayReport:
    """Replay one execution with its own definition (ToolError if there is none)."""
    history = histories.events(tenant, execution_id)
    started = history[0].event
    assert isinstance(started, ExecutionStarted)
    graph = histories.graph(tenant, started)
    return replay(execution_id, graph, [r.event for r in history])


class TreeNode(msgspec.Struct, frozen=True, kw_only=True):
    """One execution of a tree replayed, at its depth (the root is 0)."""

    depth: int
    outcome: Outcome


def replay_tree(histories: Histories, tenant: str, execution_id: str) -> list[TreeNode]:
    """Replay an execution and every descendant, parents before their children.

    Each replay uses its own recorded child results (no child is run again); the
    tree is walked to check the children's own decisions as well. The children are
    read from each parent's history (`launched_children`), not from a scan.
    """
    histories.events(tenant, execution_id)  # ToolError for an unknown root
    nodes: list[TreeNode] = []
    pending = [(0, execution_id)]
    while pending:
        depth, current = pending.pop()
        outcome = _replay_quietly(histories, tenant, current)
        nodes.append(TreeNode(depth=depth, outcome=outcome))
        if outcome.error is not None:
            continue
        history = [r.event for r in histories.events(tenant, current)]
        children = launched_children(current, history)
        pending.extend((depth + 1, child) for child in reversed(children))
    return nodes


def replay_tenant(
    histories: Histories, tenant: str, progress: Progress | None = None
) -> TenantReport:
    """Replay every execution of the tenant, in the order they started, one stream at a time."""
    if not histories.check_tenant(tenant):
        raise ToolError(f"tenant {tenant} has no events")
    ids = [summary.execution_id for summary in histories.executions(tenant)]
    began = time.perf_counter()
    failures: list[Outcome] = []
    events = 0
    for done, execution_id in enumerate(ids, start=1):
        outcome = _replay_quietly(histories, tenant, execution_id)
        events += outcome.events
        if not outcome.deterministic:
            failures.append(outcome)
        if progress is not None:
            progress(done, len(ids), len(failures))
    return TenantReport(
        executions=len(ids),
        events=events,
        seconds=time.perf_counter() - began,
        failures=failures,
    )


def _replay_quietly(histories: Histories, tenant: str, execution_id: str) -> Outcome:
    try:
        report = replay_one(histories, tenant, execution_id)
    except ToolError as exc:
        return Outcome(execution_id=execution_id, events=0, error=str(exc))
    except Exception as exc:  # a crash in today's code on an old history is a finding, not a stop
        return Outcome(execution_id=execution_id, events=0, error=f"{type(exc).__name__}: {exc}")
    return Outcome(execution_id=execution_id, events=report.events, divergence=report.divergence)


def describe(divergence: Divergence) -> list[str]:
    """Lines naming the first diverging event, what history says and what the code decided."""
    return [
        f"diverges at event {divergence.seq}: {divergence.reason}",
        f"  history: {_json(divergence.expected)}",
        f"  code:    {_json(divergence.decided)}",
    ]


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
