"""The engine's timers: delays, retry waits and execution timeouts, due in time order.

A timer is only a reminder: the execution's state says which waits are pending
(`Execution.timers()`), so a timer lost with its process is found again when the
execution is loaded, and one that fires twice or late decides nothing (the
engine checks the state again when it fires).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Awaitable, Callable

from domain.clock import parse_iso
from domain.ports import Clock

# (tenant, execution id, element, wake_at)
Timer = tuple[str, str, str, str]
Fire = Callable[[str, str, str, str], Awaitable[None]]


class TimerQueue:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, str, str, str, str]] = []
        self._pending: set[Timer] = set()
        self._wake = asyncio.Event()

    def add(self, timer: Timer) -> None:
        """Remember a timer (once: adding it again changes nothing)."""
        if timer not in self._pending:
            self._pending.add(timer)
            heapq.heappush(self._heap, (parse_iso(timer[3]), *timer))
            self._wake.set()

    def forget(self, tenant: str, execution_id: str) -> None:
        """Drop every timer of an execution that ended."""
        mine = {t for t in self._pending if t[:2] == (tenant, execution_id)}
        if mine:
            self._pending -= mine
            self._heap = [t for t in self._heap if t[1:] not in mine]
            heapq.heapify(self._heap)

    def wake(self) -> None:
        """Look at the timers again now: for a clock that jumps (tests, time travel)."""
        self._wake.set()

    async def run(self, fire: Fire, spawn: Callable[[Awaitable[None]], None]) -> None:
        """Hand each timer to `fire` (as a task made by `spawn`) once it is due; forever."""
        while True:
            if not self._heap:
                await self._wake.wait()
                self._wake.clear()
                continue
            delay = self._heap[0][0] - self._clock.now()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(delay, 60.0))
                self._wake.clear()
                continue
            _, tenant, execution_id, element, wake_at = heapq.heappop(self._heap)
            self._pending.discard((tenant, execution_id, element, wake_at))
            spawn(fire(tenant, execution_id, element, wake_at))
