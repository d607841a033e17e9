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
execution already finished in the same batch (a run of pure elements); so does
each SignalReceived (under an id of its own, since the start's item may have been
acked within the deduplication window), which wakes an execution no engine holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import structlog

from domain.events import TERMINAL_EVENTS, ExecutionStarted, SignalReceived
from domain.ports import EventStore, RecordedEvent, RelayState

log = structlog.get_logger("loom.relay")

_HELD_LIMIT = 10_000  # events kept per tenant from local writers; past that, the store answers


class Outbox(Protocol):
    """Where the relay publishes (JetStream)."""

    async def send(self, tenant: str, events: Sequence[RecordedEvent]) -> Awaitable[None]:
        """Publish in order now; the awaitable settles once every event is acknowledged."""
        ...

    async def publish_work(
        self, tenant: str, execution_ids: Sequence[UUID], woken: Sequence[tuple[UUID, int]] = ()
    ) -> None:
        """Queue executions for an engine; `woken` (id, seq of a signal) queue them again."""
        ...

    async def wake(self, tenant: str) -> None:
        """Tell the leading relay, wherever it runs, that `tenant` has new events."""
        ...

    async def on_wake(self, handler: Callable[[str], None]) -> Any: ...


class _Sent(NamedTuple):
    """A batch published and not yet known to be acknowledged."""

    tenant: str
    position: int
    size: int
    work: list[UUID]
    acked: asyncio.Future[None]
    woken: list[tuple[UUID, int]] = []  # executions a signal may wake: (id, its seq)


class Relay:
    """See the module docstring. Batches are pipelined: the next one is read and
    published while JetStream acknowledges the previous ones; a position only
    moves on once every batch up to it is acknowledged, in order.
    """

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
        self._acked: dict[str, int] = {}  # per tenant: everything up to here is on the bus
        self._sent: dict[str, int] = {}  # per tenant: published up to here, acks pending
        self._inflight: deque[_Sent] = deque()
        self._held: dict[str, dict[int, RecordedEvent]] = {}  # per tenant, by position
        self._unsaved: set[str] = set()
        self._saved_at = 0.0
        self._saving: asyncio.Task[None] | None = None
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
        """Bus handler: `tenant` has new events. Only notes them; never blocks the writer.

        The events a local writer hands over (committed, with their positions) are
        kept: when they follow on from what was sent without a hole, they are
        exactly what the store would answer, and are published without asking it.
        """
        if events and self._leading:
            held = self._held.setdefault(tenant, {})
            if len(held) < _HELD_LIMIT:
                held.update((r.position, r) for r in events if r.position > 0)
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
            await self._confirm()  # what was acknowledged meanwhile counts
        self._forget_inflight()
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
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
                    await self._confirm()
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
                self._forget_inflight()
                if not self._failing:
                    log.warning("relay failing; retrying", error=f"{type(exc).__name__}: {exc}")
                    self._failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if not self._dirty and not self._inflight:
                self._idle.set()
            await self._wait(polled)

    async def _wait(self, polled: float) -> None:
        """Until a wake-up, the oldest batch's acks, a save or the next poll is due."""
        timeout = self._poll_s - (time.monotonic() - polled) if self._leading else 1.0
        if self._unsaved:
            timeout = min(timeout, self._save_every_s)
        woken = asyncio.ensure_future(self._wakeup.wait())
        waits: list[asyncio.Future[Any]] = [woken]
        if self._inflight:
            waits.append(self._inflight[0].acked)
        try:
            await asyncio.wait(waits, timeout=max(timeout, 0.001), return_when="FIRST_COMPLETED")
        finally:
            woken.cancel()

    async def _lead(self) -> bool:
        leading = await self._state.lead()
        if leading != self._leading:
            log.info("relay lease " + ("taken" if leading else "lost"))
            # The saved positions are the truth after a handover.
            self._forget_inflight()
            self._acked.clear()
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
        try:
            for tenant in sorted(dirty):
                await self._drain(tenant)
                dirty.discard(tenant)
        finally:
            self._dirty |= dirty  # what was not drained is tried again from its place

    async def _drain(self, tenant: str) -> None:
        after = self._sent.get(tenant)
        if after is None:
            after = self._acked.get(tenant)
            if after is None:
                after = self._acked[tenant] = await asyncio.to_thread(self._state.position, tenant)
        while True:
            events = self._follow_on(tenant, after) or await asyncio.to_thread(
                self._store.read_all, tenant, after=after, limit=self._batch
            )
            if not events:
                return
            acked = asyncio.ensure_future(await self._outbox.send(tenant, events))
            after = self._sent[tenant] = events[-1].position
            self._inflight.append(
                _Sent(
                    tenant,
                    after,
                    len(events),
                    _needing_an_engine(events),
                    acked,
                    _woken_by_signals(events),
                )
            )
            if len(events) < self._batch:
                return

    def _follow_on(self, tenant: str, after: int) -> list[RecordedEvent]:
        """The held events at after+1, after+2, … up to the first hole (a hole is read)."""
        held = self._held.get(tenant)
        if not held:
            return []
        events: list[RecordedEvent] = []
        while len(events) < self._batch and (recorded := held.pop(after + 1, None)) is not None:
            events.append(recorded)
            after += 1
        for position in [p for p in held if p <= after]:
            del held[position]  # came late: the store already answered for it
        return events

    async def _confirm(self) -> None:
        """Move positions on for the batches acknowledged so far, oldest first."""
        while self._inflight and self._inflight[0].acked.done():
            sent = self._inflight[0]
            sent.acked.result()  # raises PublishFailed: the caller starts over from _acked
            if sent.work or sent.woken:
                await self._outbox.publish_work(sent.tenant, sent.work, sent.woken)
            self._inflight.popleft()
            self._acked[sent.tenant] = sent.position
            self._unsaved.add(sent.tenant)
            self._published += sent.size

    def _forget_inflight(self) -> None:
        """Start over from the acknowledged positions (JetStream drops what comes twice)."""
        for sent in self._inflight:
            if not sent.acked.done():
                sent.acked.cancel()
            elif not sent.acked.cancelled():
                sent.acked.exception()  # retrieved: the failure is handled by starting over
            self._dirty.add(sent.tenant)
        self._inflight.clear()
        self._sent.clear()
        self._held.clear()

    async def _save(self, *, force: bool = False) -> None:
        # At most every save_every_s, off the relay's path: after a crash the few events
        # since are published again, and JetStream drops them by message id.
        if not self._unsaved or not self._leading or self._saving is not None:
            return
        if not force and time.monotonic() - self._saved_at < self._save_every_s:
            return
        positions = {tenant: self._acked[tenant] for tenant in self._unsaved}
        self._unsaved.clear()
        self._saved_at = time.monotonic()
        if force:
            await asyncio.to_thread(self._state.save, positions)
            return
        self._saving = asyncio.create_task(self._save_in_background(positions))

    async def _save_in_background(self, positions: dict[str, int]) -> None:
        try:
            await asyncio.to_thread(self._state.save, positions)
        except Exception as exc:
            log.warning("relay position not saved", error=f"{type(exc).__name__}: {exc}")
            self._unsaved.update(positions)
        finally:
            self._saving = None


def _needing_an_engine(events: Sequence[RecordedEvent]) -> list[UUID]:
    started = [r.stream_id for r in events if isinstance(r.event, ExecutionStarted)]
    if not started:
        return []
    finished = {r.stream_id for r in events if isinstance(r.event, TERMINAL_EVENTS)}
    return [stream for stream in started if stream not in finished]


def _woken_by_signals(events: Sequence[RecordedEvent]) -> list[tuple[UUID, int]]:
    finished = {r.stream_id for r in events if isinstance(r.event, TERMINAL_EVENTS)}
    return [
        (r.stream_id, r.seq)
        for r in events
        if isinstance(r.event, SignalReceived) and r.stream_id not in finished
    ]
