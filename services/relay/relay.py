"""The relay: a transactional outbox from the event store to the bus.

The store is the outbox. Per tenant, the relay reads the events committed after
its tracked position, in position order (commit order), publishes each one and
waits for every ack, then moves the position on. So nothing is published that
was not committed, nothing committed is left unpublished, and after a crash it
publishes again from the last saved position: the bus drops the repeats by
message id. While the bus is down events keep being stored; the relay retries,
and they go out in order once it is back.

Every writer process (api, engine) runs a relay; one of them holds the lease
and publishes for everybody, the others only pass their wake-ups on. A relay is
woken by the local engine's publish (the in-process bus), by other processes'
wake-ups, and by a poll every `poll_s` that covers anything else.

Each ExecutionStarted also yields one work item for the engines, unless the
execution already finished in the same batch (a run of pure elements).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

import structlog

from domain.events import TERMINAL_EVENTS, ExecutionStarted
from domain.ports import EventStore, RecordedEvent

log = structlog.get_logger("loom.relay")


class Outbox(Protocol):
    """Where the relay publishes (JetStream)."""

    async def publish(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Publish in order; raise unless every event was acknowledged."""
        ...

    async def publish_work(self, tenant: str, execution_ids: Sequence[UUID]) -> None: ...

    async def wake(self, tenant: str) -> None:
        """Tell the leading relay, wherever it runs, that `tenant` has new events."""
        ...

    async def on_wake(self, handler: Callable[[str], None]) -> Any: ...


class RelayState(Protocol):
    """The relay's positions and its lease (see infra.bus.relay_state)."""

    def position(self, tenant: str) -> int: ...

    def save(self, positions: Mapping[str, int]) -> None: ...

    async def lead(self) -> bool: ...

    async def close(self) -> None: ...


class Relay:
    def __init__(
        self,
        store: EventStore,
        state: RelayState,
        outbox: Outbox,
        *,
        poll_s: float = 1.0,
        batch: int = 1000,
        save_every_s: float = 0.1,
    ) -> None:
        self._store = store
        self._state = state
        self._outbox = outbox
        self._poll_s = poll_s
        self._batch = batch
        self._save_every_s = save_every_s
        self._dirty: set[str] = set()
        self._wakeup = asyncio.Event()
        self._leading = False
        self._positions: dict[str, int] = {}
        self._unsaved: set[str] = set()
        self._saved_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[Any] | None = None
        self._failing = False
        self._published = 0
        self._idle = asyncio.Event()

    @property
    def published(self) -> int:
        """Events this relay has had acknowledged since it started."""
        return self._published

    def wake(self, tenant: str, events: Sequence[RecordedEvent] = ()) -> None:
        """Bus handler: `tenant` has new events. Only marks it; never blocks the writer."""
        self._dirty.add(tenant)
        self._idle.clear()
        self._wakeup.set()

    def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loom-relay")
            self._listener = asyncio.create_task(
                self._outbox.on_wake(lambda tenant: self.wake(tenant)), name="loom-relay-wakes"
            )

    async def close(self) -> None:
        tasks = [t for t in (self._task, self._listener) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._listener = None
        with contextlib.suppress(Exception):
            await self._save(force=True)
        await self._state.close()

    async def settled(self) -> None:
        """Wait until everything woken for so far is published (for tests and benchmarks)."""
        await self._idle.wait()

    async def _run(self) -> None:
        polled, backoff = 0.0, 0.1
        while True:
            try:
                if await self._lead():
                    if time.monotonic() - polled >= self._poll_s:
                        polled = time.monotonic()
                        self._dirty.update(await asyncio.to_thread(self._store.tenants))
                    await self._relay_dirty()
                    await self._save()
                else:
                    await self._pass_wakes_on()
                if self._failing:
                    log.info("relay publishing again")
                    self._failing = False
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.warning("relay failing; retrying", error=f"{type(exc).__name__}: {exc}")
                    self._failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if not self._dirty:
                self._idle.set()
            timeout = self._poll_s - (time.monotonic() - polled) if self._leading else 1.0
            if self._unsaved:
                timeout = min(timeout, self._save_every_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(timeout, 0.001))

    async def _lead(self) -> bool:
        leading = await self._state.lead()
        if leading != self._leading:
            log.info("relay lease " + ("taken" if leading else "lost"))
            self._positions.clear()  # the saved positions are the truth after a handover
            self._unsaved.clear()
            self._leading = leading
        return leading

    async def _pass_wakes_on(self) -> None:
        dirty, self._dirty = self._dirty, set()
        self._wakeup.clear()
        for tenant in dirty:
            await self._outbox.wake(tenant)

    async def _relay_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        self._wakeup.clear()
        failed: Exception | None = None
        for tenant in sorted(dirty):
            try:
                await self._drain(tenant)
            except Exception as exc:
                self._dirty.add(tenant)  # retried from its saved place
                failed = exc
        if failed is not None:
            raise failed

    async def _drain(self, tenant: str) -> None:
        after = self._positions.get(tenant)
        if after is None:
            after = await asyncio.to_thread(self._state.position, tenant)
            self._positions[tenant] = after
        while True:
            events = await asyncio.to_thread(
                self._store.read_all, tenant, after=after, limit=self._batch
            )
            if not events:
                return
            await self._outbox.publish(tenant, events)
            work = _needing_an_engine(events)
            if work:
                await self._outbox.publish_work(tenant, work)
            self._published += len(events)
            after = events[-1].position
            self._positions[tenant] = after
            self._unsaved.add(tenant)
            if len(events) < self._batch:
                return

    async def _save(self, *, force: bool = False) -> None:
        # Saved at most every save_every_s: after a crash the few events since are
        # published again, and JetStream drops them by message id.
        if not self._unsaved or not self._leading:
            return
        if not force and time.monotonic() - self._saved_at < self._save_every_s:
            return
        positions = {tenant: self._positions[tenant] for tenant in self._unsaved}
        await asyncio.to_thread(self._state.save, positions)
        self._unsaved.clear()
        self._saved_at = time.monotonic()


def _needing_an_engine(events: Sequence[RecordedEvent]) -> list[UUID]:
    started = [r.stream_id for r in events if isinstance(r.event, ExecutionStarted)]
    if not started:
        return []
    finished = {r.stream_id for r in events if isinstance(r.event, TERMINAL_EVENTS)}
    return [stream for stream in started if stream not in finished]
