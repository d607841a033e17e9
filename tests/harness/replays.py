"""Replaying what an execution recorded against today's code (the definition it ran)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from domain.execution import Execution
from domain.history.replay import ReplayReport, replay
from services.bootstrap import Loom


async def replayed(loom: Loom, execution_id: str, tenant: str = "acme") -> ReplayReport:
    """The report of replaying the execution's stored history."""
    history = await asyncio.to_thread(loom.store.read, tenant, UUID(execution_id))
    started = history[0].event
    graph = await loom.catalog.graph(tenant, started.process_id, started.version)
    return replay(execution_id, graph, [r.event for r in history])


async def replays(loom: Loom, execution_id: str, tenant: str = "acme") -> bool:
    """True when the execution replays deterministically; else fails naming the divergence."""
    report = await replayed(loom, execution_id, tenant)
    assert report.deterministic, report.divergence
    return True


async def rebuilt(loom: Loom, execution_id: str, tenant: str = "acme") -> Execution:
    """The execution folded from its stored history alone: what replay decides from."""
    history = await asyncio.to_thread(loom.store.read, tenant, UUID(execution_id))
    started = history[0].event
    graph = await loom.catalog.graph(tenant, started.process_id, started.version)
    return Execution.rebuild(execution_id, graph, [r.event for r in history])
