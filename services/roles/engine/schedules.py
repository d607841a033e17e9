"""The engine's schedule timers: the next tick of every live schedule, in one heap.

A heap entry is all a schedule costs here: (tick, tenant, process, key, since
version). At start the engine reads every live schedule from the schedules
index and starts what `catch_up` says of the ticks missed while no engine ran;
running, it reads what a save changed since (`poll`, every `poll_s`, and at once
when told of a save in this process). When a tick is due its schedule is
checked against the process as stored (ScheduleService.fire): a dropped,
changed or archived schedule starts nothing and its entry is not pushed again;
a live one starts the tick's one execution and pushes its next tick. Ticks come
in order, each after the one before has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from sys import intern
from typing import Any

import structlog

from domain.ports import Clock
from domain.schedules import missed_ticks
from domain.triggers import ScheduleTrigger, next_tick
from projections.schedules import ScheduleRow
from services.usecases.schedules import ScheduleService

log = structlog.get_logger("loom.schedules")

# (tick, order, tenant, process id, trigger key, since version); `order` keeps the heap
# from ever comparing further than the tick.
Entry = tuple[float, int, str, str, str, int]


def _plan(rows: list[ScheduleRow], now: float) -> list[tuple[ScheduleRow, float, list[float]]]:
    """Each schedule's next tick after `now`, and the missed ticks `catch_up` starts."""
    plan = []
    for row in rows:
        after = row.since if row.last_fired is None else max(row.since, row.last_fired)
        plan.append(
            (row, next_tick(row.trigger, max(after, now)), missed_ticks(row.trigger, after, now))
        )
    return plan


class Scheduler:
    def __init__(
        self,
        schedules: ScheduleService,
        clock: Clock,
        *,
        poll_s: float = 1.0,
        concurrency: int = 64,
    ) -> None:
        self._schedules = schedules
        self._clock = clock
        self._poll_s = poll_s
        self._heap: list[Entry] = []
        self._order = itertools.count()
        self._revision = 0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: list[asyncio.Task[Any]] = []
        self._firing: set[asyncio.Task[Any]] = set()

    @property
    def live(self) -> int:
        """Heap entries (one per live schedule, and a few stale ones until their tick)."""
        return len(self._heap)

    async def open(self) -> None:
        """Take up every live schedule; the missed ticks start in the background."""
        rows = await self._schedules.rows()
        # On a worker thread: a minutely cron long unattended has many ticks to walk.
        plan = await asyncio.to_thread(_plan, rows, self._clock.now())
        missed = [(row, due) for row, _, due in plan if due]
        for row, tick, _ in plan:
            self._revision = max(self._revision, row.revision)
            self._push(tick, row)
        self._tasks.append(asyncio.create_task(self._run(), name="loom-schedules"))
        self._tasks.append(asyncio.create_task(self._poll_forever(), name="loom-schedules-poll"))
        if missed:
            self._tasks.append(asyncio.create_task(self._catch_up(missed)))
        log.info("schedules taken up", count=len(rows), catching_up=len(missed))

    async def close(self) -> None:
        tasks = [*self._tasks, *self._firing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def wake(self) -> None:
        """Look at the ticks again now: for a clock that jumps (tests)."""
        self._wake.set()

    def changed(self, *_: Any) -> None:
        """A save in this process may have changed schedules: read them now."""
        self._changed.set()

    async def poll(self) -> int:
        """Take up the schedules written since the last look; how many."""
        rows = await self._schedules.changed(self._revision)
        for row in rows:
            self._revision = max(self._revision, row.revision)
            self._push(next_tick(row.trigger, row.since), row)
        return len(rows)

    def _push(self, tick: float, row: ScheduleRow) -> None:
        # Interned: a process's schedules, and every tick of one, share their names.
        tenant, process_id, key = intern(row.tenant), intern(row.process_id), intern(row.key)
        entry = (tick, next(self._order), tenant, process_id, key, row.since_version)
        heapq.heappush(self._heap, entry)
        self._wake.set()

    async def _poll_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._poll_s)
            self._changed.clear()
            try:
                await self.poll()
            except Exception as exc:  # the index away: look again at the next poll
                log.warning("schedules not read", error=f"{type(exc).__name__}: {exc}")

    async def _catch_up(self, missed: list[tuple[ScheduleRow, list[float]]]) -> None:
        for row, ticks in missed:
            for tick in ticks:
                await self._fire_one(row.tenant, row.process_id, row.key, row.since_version, tick)

    async def _run(self) -> None:
        while True:
            if not self._heap:
                await self._wait(None)
                continue
            delay = self._heap[0][0] - self._clock.now()
            if delay > 0:
                await self._wait(min(delay, 60.0))
                continue
            tick, _, tenant, process_id, key, since_version = heapq.heappop(self._heap)
            await self._slots.acquire()
            task = asyncio.create_task(self._fire(tenant, process_id, key, since_version, tick))
            self._firing.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._firing.discard(task)
        self._slots.release()

    async def _wait(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _fire(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> None:
        trigger = await self._fire_one(tenant, process_id, key, since_version, tick)
        if trigger is not None:
            entry = (next_tick(trigger, tick), next(self._order), tenant, process_id, key)
            heapq.heappush(self._heap, (*entry, since_version))
            self._wake.set()

    async def _fire_one(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> ScheduleTrigger | None:
        for attempt in itertools.count():
            try:
                return await self._schedules.fire(tenant, process_id, key, since_version, tick)
            except Exception:
                # The store away, say: the tick's id is derived, so trying again is safe.
                log.exception("tick could not start", process_id=process_id, key=key)
                await asyncio.sleep(min(2.0 ** min(attempt, 5), 30.0))
        raise AssertionError("unreachable")
