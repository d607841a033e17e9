"""An engine's share of the work: executions handed out by a queue shared by every engine.

A work item names one execution. The engine that receives it holds it while the
execution has effects in flight (telling the queue it is still at work), and
then: acks it once the execution has ended; hands it back with a delay until
the next timer when only timers remain, so that whichever engine is free then
fires it; hands it back soon when an effect could not be recorded here. An
engine that dies stops telling the queue, so after ack_wait its items go to
another engine, which reloads each execution and performs again the effect
that was in flight (at least once). Two engines never record the same step:
the execution's stream takes appends only at the version they were decided on,
and the loser reloads and decides again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

import structlog

from domain.clock import parse_iso
from domain.execution import Execution
from domain.ports import Clock, EventFeed, EventStore, RecordedEvent, WorkItem, WorkQueue
from projections.status import StatusStore

log = structlog.get_logger("loom.worker")

# An execution waiting for a signal with a timeout is handed back until at most this
# long: a signal recorded meanwhile cannot queue it again (its item waits in the queue
# for the timeout), so whatever follows the signal starts within this.
SIGNAL_RECHECK_S = 60.0


class DrivenEngine(Protocol):
    """What the worker needs of services.roles.engine.engine.Engine."""

    async def drive(self, tenant: str, execution_id: str) -> Execution | None: ...

    async def load(self, tenant: str, execution_id: str) -> Execution | None: ...

    def forget(self, tenant: str, execution_id: str) -> None: ...

    def running(self, tenant: str, execution_id: str) -> bool: ...

    async def fire_due(self, tenant: str, execution_id: str) -> None: ...

    async def reconcile(self, tenant: str, execution_id: str) -> Execution | None: ...


class Worker:
    """Takes work items from the queue and drives their executions with one engine.

    `feed` is the engine's own bus: it wakes a held item whenever its execution
    records something. `hold_timers_s`: a timer due sooner than this is waited
    for here rather than handed back.
    """

    def __init__(
        self,
        engine: DrivenEngine,
        queue: WorkQueue,
        feed: EventFeed,
        clock: Clock,
        *,
        concurrency: int = 256,
        check_s: float = 1.0,
        hold_timers_s: float = 0.5,
    ) -> None:
        self._engine = engine
        self._queue = queue
        self._feed = feed
        self._clock = clock
        self._concurrency = concurrency
        self._check_s = check_s
        self._hold_timers_s = hold_timers_s
        self._held: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        return len(self._held)

    def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loom-worker")

    async def close(self) -> None:
        tasks = [*self._held, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        async for item in self._queue.items(self._free):
            task = asyncio.create_task(self._hold(item))
            self._held.add(task)
            task.add_done_callback(self._release)

    async def _free(self) -> int:
        while len(self._held) >= self._concurrency:
            self._room.clear()
            await self._room.wait()
        return min(self._concurrency - len(self._held), 64)

    def _release(self, task: asyncio.Task[None]) -> None:
        self._held.discard(task)
        self._room.set()

    async def _hold(self, item: WorkItem) -> None:
        tenant, execution_id = item.tenant, str(item.execution_id)
        structlog.contextvars.bind_contextvars(tenant_id=tenant, execution_id=execution_id)
        keepalive = asyncio.create_task(self._keep_alive(item))
        try:
            await self._work(item, tenant, execution_id)
        except asyncio.CancelledError:
            # Shutting down: hand it straight to another engine (a dead engine's items
            # wait for ack_wait instead).
            with contextlib.suppress(Exception):
                await item.nak()
            raise
        except LookupError as exc:  # its execution or process does not exist: nothing to do
            log.error("work item dropped", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await item.ack()
        except Exception:
            log.exception("work item failed; handing it back")
            with contextlib.suppress(Exception):
                await item.nak(delay=_backoff(item.deliveries))
        finally:
            keepalive.cancel()

    async def _keep_alive(self, item: WorkItem) -> None:
        while True:
            await asyncio.sleep(self._queue.ack_wait / 3)
            with contextlib.suppress(Exception):
                await item.in_progress()

    async def _work(self, item: WorkItem, tenant: str, execution_id: str) -> None:
        changed = asyncio.Event()
        latest = 0

        def on_events(tenant: str, events: Sequence[RecordedEvent]) -> None:
            nonlocal latest
            latest = max(latest, events[-1].seq)
            changed.set()

        stop = await self._feed.watch(tenant, item.execution_id, on_events)
        try:
            execution = await self._engine.drive(tenant, execution_id)
            stalled = 0
            while True:
                changed.clear()
                if execution is not None and latest > execution.seq:
                    # Someone else (the api's cancel) recorded something: reload.
                    self._engine.forget(tenant, execution_id)
                    execution = await self._engine.load(tenant, execution_id)
                if execution is None:
                    log.warning("work item for an unknown execution dropped")
                    await item.ack()
                    return
                if execution.finished:
                    await item.ack()
                    return
                wake = _earliest(execution)
                now = self._clock.now()
                if execution.in_flight() or execution.yielded:
                    stalled = 0 if self._engine.running(tenant, execution_id) else stalled + 1
                    if stalled >= 2:
                        # Its effect ran here but could not be recorded: try again later.
                        await item.nak(delay=_backoff(item.deliveries))
                        return
                elif wake is None:
                    await item.ack()  # nothing left to wait for
                    return
                elif wake - now > self._hold_timers_s:
                    delay = wake - now
                    if execution.waiting():
                        delay = min(delay, SIGNAL_RECHECK_S)
                    await item.nak(delay=delay)
                    return
                timeout = self._check_s if wake is None else min(self._check_s, wake - now)
                woken = True
                try:
                    await asyncio.wait_for(changed.wait(), max(timeout, 0.0))
                except TimeoutError:
                    woken = False
                if wake is not None and self._clock.now() >= wake:
                    await self._engine.fire_due(tenant, execution_id)
                if woken:
                    execution = await self._engine.load(tenant, execution_id)
                else:
                    # Quiet here: another process may have ended it (a cancel over the api).
                    execution = await self._engine.reconcile(tenant, execution_id)
        finally:
            await stop()


def _earliest(execution: Execution) -> float | None:
    timers = execution.timers()
    return min(parse_iso(wake_at) for _, wake_at in timers) if timers else None


def _backoff(deliveries: int) -> float:
    return float(min(2 ** min(deliveries, 5), 30))


class WorkPublisher(Protocol):
    async def publish_work(self, tenant: str, execution_ids: Sequence[UUID]) -> None: ...


async def requeue_running(
    store: EventStore, statuses: StatusStore, publisher: WorkPublisher
) -> int:
    """Queue every execution the read model shows running.

    Covers work items that were lost (a NATS server that lost its storage) and
    executions left running by the embedded mode. The work queue keeps one item
    per execution, so an execution queued or held already is left as it is.
    """
    count = 0
    for tenant in await asyncio.to_thread(store.tenants):
        running = await asyncio.to_thread(statuses.running, tenant)
        for start in range(0, len(running), 500):
            chunk = [UUID(execution_id) for execution_id in running[start : start + 500]]
            await publisher.publish_work(tenant, chunk)
        count += len(running)
    log.info("running executions queued", count=count)
    return count
