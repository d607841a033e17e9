"""Waiting on an eventually consistent Loom, never by sleeping and hoping.

Each wait ends on a positive fact (a status, an event, a marker execution that
got past a point) or fails naming what it waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from services.bootstrap import Loom
from tests.harness.clock import MovableClock
from tests.support import with_delay

TERMINAL = ("completed", "failed", "cancelled")
"""The statuses an execution ends in."""


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Return once `check()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def holds(predicate: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A plain predicate (a threading.Event's is_set, say) as a check for `until`."""

    async def check() -> bool:
        return predicate()

    return check


async def until_finished(
    loom: Loom, execution_id: str, tenant: str = "acme", *, settle: bool = True
) -> dict[str, Any]:
    """The status document (as the API sends it) once the execution ended and the read
    model folded all of it.

    `settle=False` for a Loom started on another event loop (by a test client's app,
    say): its read model cannot be awaited from this one, and the status is read as is.
    """

    async def ended() -> bool:
        return (await loom.executions.status(tenant, execution_id)).status in TERMINAL

    await until(ended, f"execution {execution_id} to end")
    if settle:
        await loom.projector.settled()
    document: dict[str, Any] = msgspec.to_builtins(
        await loom.executions.status(tenant, execution_id)
    )
    return document


async def events(loom: Loom, execution_id: str, tenant: str = "acme") -> list[dict[str, Any]]:
    """The execution's events as the API sends them."""
    result: list[dict[str, Any]] = msgspec.to_builtins(
        await loom.executions.events(tenant, execution_id)
    )
    return result


async def has_event(loom: Loom, execution_id: str, kind: str, **data: Any) -> bool:
    """Whether the execution recorded an event of `kind` whose data holds `data`."""
    return any(
        e["type"] == kind and all(e["data"].get(k) == v for k, v in data.items())
        for e in await events(loom, execution_id)
    )


async def clock_passed(loom: Loom, clock: MovableClock, seconds: float) -> None:
    """Move `clock` on by `seconds` and return once Loom's timers have looked at the new time.

    The proof is a marker: an execution of its own whose delay is due exactly then has
    finished. Timers fire in time order, so every timer due by then has been handed to
    the engine too, and none due later has: a test can now assert what did not happen.
    """
    saved = await loom.processes.save(
        "acme", "harness", with_delay(seconds, name=f"marker: {seconds} s")
    )
    started = await loom.executions.start("acme", "harness", str(saved["process_id"]), None, None)
    marker = started.execution_id
    await until(lambda: has_event(loom, marker, "NodeExecuting", element="wait"), "the marker")
    clock.t += seconds
    loom.engine.wake_timers()
    document = await until_finished(loom, marker)
    assert document["status"] == "completed", document
