"""The catalog projector: keeps the process and project lists current with the store.

Fed by the same bus as the status projector, it notes which definition streams
moved (a process saved, a project filed), then on a worker thread reads each
of them whole and saves its entry rebuilt by the domain's own aggregate
(`projections.catalog`). Reading the stream instead of folding the delivered
events makes an entry independent of delivery order and duplicates: those
streams are short and saves are rare, so it costs little.

The tenant's store position is saved with the entries (and, when nothing but
executions moved, at most once a second), so a restart catches up from there.
In one process `settled(tenant)` gives read-your-writes: a list asked for
right after a save waits for that save's entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

import structlog

from domain.clock import parse_iso
from domain.events import Event, HookIssued
from domain.ports import EventStore, RecordedEvent
from domain.process import Process
from domain.schedules import live_schedules
from projections.catalog import (
    PROCESS,
    CatalogStore,
    ProcessSummary,
    ProjectEntry,
    catalog_streams,
    process_summary,
    project_entry,
)
from projections.hooks import Hook, HookIndex
from projections.schedules import ScheduleIndex, ScheduleRow

log = structlog.get_logger("loom.projector")

# Gather what arrives within this long into one write.
LINGER_S = 0.01
# When only executions moved, the position is written at most this often: it only
# shortens the catch-up after a restart.
POSITION_EVERY_S = 1.0
RETRY_S = 1.0


class CatalogProjector:
    def __init__(
        self,
        store: EventStore,
        lists: CatalogStore,
        hooks: HookIndex | None = None,
        schedules: ScheduleIndex | None = None,
    ) -> None:
        """`hooks`: the webhook index, which a save writes itself; kept here too, so a
        save cut short, an import or a rebuild leaves no hook unreachable. `schedules`
        likewise: the live schedules of every process that moved."""
        self._store = store
        self._lists = lists
        self._hooks = hooks
        self._schedules = schedules
        # Owned by the event loop: only coroutines and bus handlers touch these.
        self._pending: dict[str, dict[str, str]] = defaultdict(dict)  # tenant: {stream: kind}
        self._positions: dict[str, int] = {}
        self._saved_at = 0.0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # someone waits on a list: skip the linger
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- fed by the bus ----------------------------------------------------------------

    def deliver(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Bus handler: note what moved; never blocks, never raises."""
        try:
            streams = catalog_streams(tenant, events)
        except Exception:  # the drain is the place to fail, never the engine's commit
            log.exception("catalog projection failed", tenant=tenant)
            return
        self._note(tenant, streams, max((r.position for r in events), default=0))
        if streams:
            self._idle.clear()
            self._wake.set()
        elif time.monotonic() - self._saved_at >= POSITION_EVERY_S:
            self._wake.set()

    async def fold_batches(self, batches: Sequence[tuple[str, Sequence[RecordedEvent]]]) -> None:
        """Save what a bus consumer fetched before returning (it acks after)."""
        for tenant, events in batches:
            streams = catalog_streams(tenant, events)
            self._note(tenant, streams, max((r.position for r in events), default=0))
        if any(self._pending.values()):
            self._idle.clear()
        await self._drain()

    def _note(self, tenant: str, streams: dict[str, str], position: int) -> None:
        if streams:
            self._pending[tenant].update(streams)
        if position > self._positions.get(tenant, 0):
            self._positions[tenant] = position

    async def settled(self, tenant: str | None = None) -> None:
        """Wait until the entries of every definition delivered so far (of `tenant`) are saved."""
        while self._pending.get(tenant) if tenant is not None else any(self._pending.values()):
            self._hurry.set()
            await self._idle.wait()
            if self._task is None:  # nothing drains on its own: drain here
                await self._drain()
        async with self._lock:  # a drain in flight has taken its streams off the list
            pass

    # --- the loop ----------------------------------------------------------------------

    def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loom-catalog-projector")

    async def close(self) -> None:
        """Stop, saving what is noted (the position included) first.

        The loop is asked to stop, not cancelled: a cancel would leave its read of
        the store running on a worker thread while the store is closed under it.
        """
        if self._task is not None:
            self._closing = True
            self._wake.set()
            self._hurry.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self._drain()
        except Exception:  # the store is the record: the next start catches up
            log.warning("catalog not saved before stopping", exc_info=True)

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), LINGER_S)
            self._wake.clear()
            self._hurry.clear()
            try:
                await self._drain()
            except Exception:
                log.exception("catalog projection failed")
                if self._closing:
                    return
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _drain(self) -> None:
        async with self._lock:
            try:
                for tenant in list(self._pending.keys() | self._positions.keys()):
                    streams = self._pending.pop(tenant, {})
                    position = self._positions.pop(tenant, None)
                    try:
                        await asyncio.to_thread(self._refresh, tenant, streams, position)
                    except BaseException:
                        # Put back what this write lost; newer notes made meanwhile stay.
                        self._pending[tenant] = streams | self._pending.get(tenant, {})
                        if position is not None:
                            latest = max(position, self._positions.get(tenant, 0))
                            self._positions[tenant] = latest
                        raise
                self._saved_at = time.monotonic()
            finally:
                if not any(self._pending.values()):
                    self._pending.clear()
                    self._idle.set()

    # --- blocking: the reads and the write ---------------------------------------------

    def _refresh(self, tenant: str, streams: dict[str, str], position: int | None) -> None:
        """Rebuild each stream's entry from the store and save them with `position`."""
        processes: list[tuple[int, ProcessSummary]] = []
        projects: list[tuple[int, ProjectEntry]] = []
        hooks: list[Hook] = []
        for stream, kind in streams.items():
            events = [r.event for r in self._store.read(tenant, UUID(stream))]
            if kind == PROCESS:
                summary = process_summary(stream, events)
                if summary is not None:
                    processes.append((len(events), summary))
                hooks += [
                    Hook(e.token, tenant, stream, e.key)
                    for e in events
                    if isinstance(e, HookIssued)
                ]
                self._index_schedules(tenant, stream, events)
            else:
                entry = project_entry(stream, events)
                if entry is not None:
                    projects.append((len(events), entry))
        if hooks and self._hooks is not None:
            self._hooks.add(hooks)  # before the position moves past them
        if processes or projects or position is not None:
            self._lists.save(tenant, processes, projects, position)

    def _index_schedules(self, tenant: str, stream: str, events: list[Event]) -> None:
        if self._schedules is None or not events:
            return
        process = Process.rebuild(stream, events)
        if not process.versions:
            return
        # Unchanged rows stay as they are (their last fired tick too).
        rows = [
            ScheduleRow(tenant, stream, key, live.trigger, live.since_version, since, None, 0)
            for key, live in live_schedules(process).items()
            for since in [parse_iso(live.since)]
        ]
        self._schedules.put(tenant, stream, rows)

    def catch_up(self, tenant: str, *, batch: int = 2000) -> int:
        """Rebuild the entries of every definition that moved past the tracked position."""
        after = tracked = self._lists.tracking(tenant)
        streams: dict[str, str] = {}
        while events := self._store.read_all(tenant, after=after, limit=batch):
            streams.update(catalog_streams(tenant, events))
            after = events[-1].position
        if after > tracked:
            self._refresh(tenant, streams, after)
        return len(streams)

    def rebuild(self, tenant: str) -> int:
        """Forget the tenant's lists and rebuild them from the store (blocking)."""
        self._lists.reset(tenant)
        return self.catch_up(tenant)
