"""Schedules for a test: a process with schedules, moving the clock past ticks, and what
the ticks started, read from the event store under the ids they derive
(domain.schedules.tick_execution_id)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.clock import parse_iso
from domain.events import ExecutionStarted
from domain.schedules import tick_execution_id
from services.bootstrap import Loom
from tests.harness.clock import MovableClock
from tests.nats_support import eventually

T0 = parse_iso("2026-01-05T00:00:00Z")  # a multiple of 60 s: every_s ticks sit on a grid


def clock_at(t: float) -> MovableClock:
    clock = MovableClock()
    clock.t = t
    return clock


def process(name: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "project": "Schedules",
        "app": "Jobs",
        "name": name,
        "threads": [
            {
                "key": "main",
                "elements": [{"key": "start", "type": "trigger"}, {"key": "done", "type": "end"}],
                "connections": [{"source": "start", "target": "done"}],
            }
        ],
        "triggers": triggers,
    }


def every(key: str, seconds: float, **more: Any) -> dict[str, Any]:
    return {"key": key, "type": "schedule", "every_s": seconds, **more}


def move(clock: MovableClock, to: float, *looms: Loom) -> None:
    clock.t = to
    for loom in looms:
        assert loom.scheduler is not None
        loom.scheduler.wake()


async def save(loom: Loom, body: dict[str, Any], **kw: Any) -> str:
    saved = await loom.processes.save("acme", "alice", body, **kw)
    return str(saved["process_id"])


def started(loom: Loom, process_id: str, key: str, tick: float) -> ExecutionStarted | None:
    stream = UUID(tick_execution_id("acme", process_id, key, tick))
    history = loom.store.read("acme", stream, upto=1)
    return history[0].event if history and isinstance(history[0].event, ExecutionStarted) else None


async def tick_started(loom: Loom, process_id: str, key: str, tick: float) -> None:
    async def check() -> bool:
        return started(loom, process_id, key, tick) is not None

    await eventually(check, 15)


def executions_of(loom: Loom, process_id: str) -> list[ExecutionStarted]:
    """Every execution of the process in the store, in the order they started."""
    found, after = [], 0
    while batch := loom.store.read_all("acme", after=after, limit=1000):
        after = batch[-1].position
        found += [
            r.event
            for r in batch
            if isinstance(r.event, ExecutionStarted) and r.event.process_id == process_id
        ]
    return found


def ticks(loom: Loom, process_id: str) -> list[str]:
    return sorted(e.input["scheduled_at"] for e in executions_of(loom, process_id))
