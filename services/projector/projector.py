"""The projector: folds committed events into the status read model.

Fed by the bus (in-process or NATS), it batches whatever has arrived, folds it
with `projections.status`, and writes the documents and the tenant's position
in one transaction. Folding is idempotent by seq, so duplicates change nothing;
`catch_up` reads the event store itself from the tracked position, which is how
a restarted projector (or a rebuild) converges to the store.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import structlog

from domain.events import EXECUTION_EVENT_TYPES
from domain.ports import EventStore, RecordedEvent
from projections.status import StatusDoc, empty_status, fold_status

log = structlog.get_logger("loom.projector")

# Gather what arrives within this long into one transaction: the read model stays
# milliseconds fresh, and the folding costs the live path (one process) far less.
LINGER_S = 0.01


class Projector:
    def __init__(self, store: EventStore, statuses: Any, *, cache_size: int = 5000) -> None:
        self._store = store
        self._statuses = statuses
        self._queue: asyncio.Queue[tuple[str, Sequence[RecordedEvent]]] = asyncio.Queue()
        self._docs: OrderedDict[tuple[str, str], StatusDoc] = OrderedDict()
        self._cache_size = cache_size
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def deliver(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Bus handler: enqueue only, never block the publisher."""
        self._idle.clear()
        self._queue.put_nowait((tenant, events))

    def open(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loom-projector")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def settled(self) -> None:
        """Wait until everything delivered so far is folded (for tests and benchmarks)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            batches = [await self._queue.get()]
            await asyncio.sleep(LINGER_S)
            while not self._queue.empty():
                batches.append(self._queue.get_nowait())
            by_tenant: dict[str, list[RecordedEvent]] = defaultdict(list)
            for tenant, events in batches:
                by_tenant[tenant].extend(events)
            for tenant, events in by_tenant.items():
                try:
                    await self.fold(tenant, events)
                except Exception:
                    # The store is the record: the next catch-up folds what was missed.
                    log.exception("projection failed", tenant=tenant)
            if self._queue.empty():
                self._idle.set()

    async def fold(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """`apply` off the event loop; a failure forgets the cached documents and re-raises."""
        try:
            await asyncio.to_thread(self.apply, tenant, events)
        except Exception:
            self._docs.clear()
            raise

    async def fold_batches(self, batches: Sequence[tuple[str, Sequence[RecordedEvent]]]) -> None:
        """Fold what a bus consumer fetched, tenant by tenant (commits before it acks)."""
        for tenant, events in batches:
            await self.fold(tenant, events)

    def apply(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Fold events into their documents and save them with the position (blocking).

        Idempotent: an event at or below a document's position changes nothing. An
        event past a hole (a redelivery out of order, or a document another
        projector moved on meanwhile) first folds the hole from the store, so a
        saved document is always the fold of a whole prefix of its execution.
        """
        touched: dict[str, StatusDoc] = {}
        for recorded in events:
            if not _is_execution_event(recorded):
                continue  # a bus carries process and agent events too
            execution_id = str(recorded.stream_id)
            doc = touched.get(execution_id) or self._doc(tenant, execution_id)
            if recorded.seq > doc["position"] + 1:
                for missed in self._store.read(
                    tenant, recorded.stream_id, after=doc["position"], upto=recorded.seq - 1
                ):
                    fold_status(doc, missed.seq, missed.event)
            fold_status(doc, recorded.seq, recorded.event)
            touched[execution_id] = doc
        position = max((r.position for r in events), default=0) or None
        if not touched and position is None:
            return
        self._statuses.save(tenant, list(touched.values()), position)

    def _doc(self, tenant: str, execution_id: str) -> StatusDoc:
        key = (tenant, execution_id)
        doc = self._docs.get(key)
        if doc is None:
            doc = self._statuses.get(tenant, execution_id) or empty_status(execution_id)
            self._docs[key] = doc
            if len(self._docs) > self._cache_size:
                self._docs.popitem(last=False)
        else:
            self._docs.move_to_end(key)
        return doc

    def catch_up(self, tenant: str, *, batch: int = 2000) -> int:
        """Fold everything the store holds past the tracked position (blocking)."""
        after, folded = self._statuses.tracking(tenant), 0
        while True:
            events = self._store.read_all(tenant, after=after, limit=batch)
            if not events:
                return folded
            self.apply(tenant, events)
            after = events[-1].position
            folded += sum(1 for r in events if _is_execution_event(r))

    def rebuild(self, tenant: str) -> int:
        """Forget the tenant's read model and fold it again from the store (blocking)."""
        self._statuses.reset(tenant)
        self._docs = OrderedDict((k, v) for k, v in self._docs.items() if k[0] != tenant)
        return self.catch_up(tenant)


def _is_execution_event(recorded: RecordedEvent) -> bool:
    return isinstance(recorded.event, EXECUTION_EVENT_TYPES)
