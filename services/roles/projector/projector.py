"""The projector: folds committed events into the status read model.

Fed by the bus (in-process or NATS), it folds on the event loop into documents
it keeps in memory, and every few milliseconds writes what changed, with the
tenant's position, in one transaction on a worker thread. Folding is
idempotent by seq, so duplicates change nothing; `catch_up` reads the event
store itself from the tracked position, which is how a restarted projector (or
a rebuild) converges to the store. Both go through one fold (`_fold_steps`): the
loop runs its store reads on a worker thread, catch-up runs them in place.

The documents in memory are never older than the saved ones, so the API may
answer status reads from them (`current`): in one process that makes the
status of an execution current the moment its start has answered. A list, which
reads the saved documents, first waits (`saved`) until everything delivered of its
tenant so far is saved, so it never shows an execution older than a status did.

One module although long: the loop, the fold and the catch-up share the documents
in memory and their positions, and keeping them together keeps that state in one
owner's hands.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from functools import partial
from typing import Any
from uuid import UUID

import structlog

from domain.events import EXECUTION_EVENT_TYPES
from domain.ports import EventStore, RecordedEvent, StoreUnavailable
from projections.inbox import InboxRow, InboxStore, inbox_row
from projections.status import (
    ExecutionStatus,
    StatusStore,
    copy_status,
    empty_status,
    fold_status,
    status_row,
)

log = structlog.get_logger("loom.projector")

# Gather what arrives within this long into one transaction: the read model stays
# milliseconds fresh, and the writing costs the live path (one process) far less.
LINGER_S = 0.01
# After a failed save, wait this long before writing the same documents again.
RETRY_S = 1.0
# Events that fail to fold this often for another reason than the store being away
# are dropped (and logged), so that they do not hold up everything behind them.
MAX_FAILURES = 5
# A list waits at most this long for the saves it needs; past it, the store is away.
SAVED_WAIT_S = 5.0

Key = tuple[str, str]
# What a step of the fold needs done off the loop (a store read or write), and the
# steps themselves: each yields a blocking call and is sent back its result.
Blocking = Callable[[], Any]
Steps = Generator[Blocking, Any, None]


class _Queued:
    """Delivered events waiting on a store read, with the documents they will change."""

    __slots__ = ("events", "failures", "keys", "tenant")

    def __init__(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        self.tenant = tenant
        self.events = events
        self.keys = {(tenant, execution_id) for execution_id, _ in _execution_events(events)}
        self.failures = 0


class Projector:
    def __init__(
        self,
        store: EventStore,
        statuses: StatusStore,
        *,
        cache_size: int = 5000,
        signals: InboxStore | None = None,
    ) -> None:
        self._store = store
        self._statuses = statuses
        self._signals = signals  # the inbox of waiting signals, saved before the statuses
        self._cache_size = cache_size
        # Owned by the event loop: only coroutines and bus handlers touch these.
        self._docs: OrderedDict[Key, ExecutionStatus] = OrderedDict()
        self._inbox: list[_Queued] = []  # in delivery order, each waiting on a read
        self._queued: Counter[Key] = Counter()  # documents with events in the inbox
        self._unsaved: dict[str, dict[str, ExecutionStatus]] = defaultdict(dict)
        self._positions: dict[str, int] = {}
        # Per tenant, deliveries counted as they arrive, as they are folded (always a
        # prefix: the inbox folds in order and nothing overtakes it), and as saved.
        self._delivered: Counter[str] = Counter()
        self._folded: Counter[str] = Counter()
        self._saved: Counter[str] = Counter()
        self._save_done = asyncio.Event()  # set (and replaced) after each save
        self._hurry = asyncio.Event()  # a list waits on a save: skip the linger
        self._drain_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- fed by the bus ----------------------------------------------------------------

    def deliver(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Bus handler: fold now what needs no read, queue the rest; never raises."""
        if not events:
            return
        self._idle.clear()
        self._wake.set()
        self._delivered[tenant] += 1
        # Behind anything queued, events wait their turn: a document folds in seq order.
        if not self._inbox:
            try:
                if self._fold_in_memory(tenant, events):
                    self._folded[tenant] += 1
                    return
            except Exception:
                # Called by the engine right after its commit: a fold that fails here is
                # the drain's to retry or report, never the engine's.
                log.exception("projection failed", tenant=tenant)
        self._enqueue(_Queued(tenant, events))

    async def fold_batches(self, batches: Sequence[tuple[str, Sequence[RecordedEvent]]]) -> None:
        """Fold what a bus consumer fetched and save it before returning (it acks after).

        On failure nothing of it stays queued: the bus delivers it again.
        """
        mine = [_Queued(tenant, events) for tenant, events in batches if events]
        for queued in mine:
            self._delivered[queued.tenant] += 1
            self._enqueue(queued)
        try:
            await self._drain(drop_failing=False)
        except BaseException:
            for queued in mine:
                if queued in self._inbox:
                    self._dequeue(queued)
                    self._delivered[queued.tenant] -= 1  # taken back: the bus redelivers
            raise

    @property
    def backlog(self) -> int:
        """Deliveries waiting on a store read before they can be folded."""
        return len(self._inbox)

    async def current(self, tenant: str, execution_id: str) -> ExecutionStatus | None:
        """A copy of the execution's document as current as the store, if this projector
        holds it or has events of it waiting (None: ask the read model)."""
        doc = self._held(tenant, execution_id)
        if not self._queued[(tenant, execution_id)]:
            return None if doc is None else copy_status(doc)
        # Some of its events wait on a read: the store has them all, fold them on a copy.
        copy = copy_status(doc) if doc is not None else empty_status(execution_id)
        history = await asyncio.to_thread(
            self._store.read, tenant, UUID(execution_id), after=copy.position
        )
        for recorded in history:
            fold_status(copy, recorded.seq, recorded.event)
        return copy if copy.position else None

    async def saved(self, tenant: str, timeout: float = SAVED_WAIT_S) -> bool:
        """Wait until everything delivered of `tenant` so far is saved; False if it was
        not within `timeout` (the read model's store is away, or nothing saves)."""
        target = self._delivered[tenant]
        if self._task is None:  # fed by `fold_batches`: saved before each returns
            return self._saved[tenant] >= target
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._saved[tenant] < target:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._hurry.set()
            self._wake.set()
            done = self._save_done
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), left)
        return True

    # --- the loop ----------------------------------------------------------------------

    def open(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="loom-projector")

    async def close(self) -> None:
        """Stop the loop between two drains, never inside one.

        Asked to stop, not cancelled: a cancel would leave its read of the store
        running on a worker thread while the store is closed under it. What is
        still unsaved is the next start's to fold again from the store.
        """
        if self._task is not None:
            self._closing = True
            self._wake.set()
            self._hurry.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def settled(self) -> None:
        """Wait until everything delivered so far is folded and saved (tests, benchmarks).

        Only an open projector saves on its own; fed by `fold_batches`, it has
        saved by the time each call returns.
        """
        if self._task is not None:
            await self._idle.wait()

    async def _run(self) -> None:
        while not self._closing:
            await self._wake.wait()
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), LINGER_S)
            self._wake.clear()
            self._hurry.clear()
            try:
                await self._drain(drop_failing=True)
            except Exception:
                # The store is away: what is queued and unsaved stays; try again later.
                log.exception("projection failed")
                if not self._closing:
                    await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def _drain(self, *, drop_failing: bool) -> None:
        async with self._drain_lock:
            try:
                while self._inbox:
                    head = self._inbox[0]
                    try:
                        await _run(self._fold_steps(head.tenant, head.events))
                    except StoreUnavailable:
                        raise
                    except Exception:
                        head.failures += 1
                        if not drop_failing or head.failures < MAX_FAILURES:
                            raise
                        self._give_up(head)
                        self._folded[head.tenant] += 1
                        if head.tenant not in self._unsaved:  # no save will count it
                            self._saved[head.tenant] = self._folded[head.tenant]
                        continue
                    self._dequeue(head)
                    self._folded[head.tenant] += 1
                for tenant in list(self._unsaved):
                    await _run(self._save_steps(tenant))
            finally:
                # Waiters on a save look again (on the loop: catch-up saves on a thread).
                self._save_done.set()
                self._save_done = asyncio.Event()
                if not self._inbox and not self._unsaved:
                    self._idle.set()

    def _enqueue(self, queued: _Queued) -> None:
        self._inbox.append(queued)
        self._queued.update(queued.keys)

    def _dequeue(self, queued: _Queued) -> None:
        self._inbox.remove(queued)
        self._queued.subtract(queued.keys)
        for key in queued.keys:
            if self._queued[key] <= 0:
                del self._queued[key]

    def _give_up(self, queued: _Queued) -> None:
        """Drop events that keep failing to fold (a bug, not an outage), so the rest go on.

        Their documents are forgotten here: the next event of each reads the store.
        """
        log.error(
            "events dropped from the read model",
            tenant=queued.tenant,
            executions=sorted(execution_id for _, execution_id in queued.keys),
            failures=queued.failures,
        )
        self._dequeue(queued)
        for tenant, execution_id in queued.keys:
            self._docs.pop((tenant, execution_id), None)
            self._unsaved.get(tenant, {}).pop(execution_id, None)

    # --- folding (on the loop) ---------------------------------------------------------

    def _fold_in_memory(self, tenant: str, events: Sequence[RecordedEvent]) -> bool:
        """Fold `events` if every document they need is in memory or new; else fold none."""
        mine = _execution_events(events)
        if self._reads(tenant, mine):
            return False
        self._fold(tenant, events, mine)
        return True

    def _fold_steps(self, tenant: str, events: Sequence[RecordedEvent]) -> Steps:
        """Fetch the saved documents and the missed events `events` need, then fold them.

        One read for the documents and one for the events, however many executions
        the batch spans; nothing is changed before the first read is back.
        """
        mine = _execution_events(events)
        missing = list(dict.fromkeys(i for i, _ in mine if self._held(tenant, i) is None))
        if missing:
            stored: dict[str, ExecutionStatus] = yield partial(self._saved_docs, tenant, missing)
            for execution_id in missing:
                # Folded meanwhile? The held document is the newer one.
                if self._held(tenant, execution_id) is None:
                    doc = stored.get(execution_id) or empty_status(execution_id)
                    self._hold(tenant, execution_id, doc)
        reads = self._reads(tenant, mine)
        if reads:
            missed: dict[str, list[RecordedEvent]] = yield partial(self._read_missed, tenant, reads)
            for execution_id, history in missed.items():
                held = self._held(tenant, execution_id)
                assert held is not None
                for event in history:
                    fold_status(held, event.seq, event.event)
        self._fold(tenant, events, mine)

    def _reads(
        self, tenant: str, mine: list[tuple[str, RecordedEvent]]
    ) -> dict[str, tuple[UUID, int, int]]:
        """Where `mine` leaves a hole in a document (a redelivery past one, a document
        another projector moved on, one not held here), the store read that fills it:
        the execution's events from the document's position (0 if not held) to its last
        in `mine`."""
        reads: dict[str, tuple[UUID, int, int]] = {}
        expected: dict[str, int] = {}
        for execution_id, recorded in mine:
            if execution_id in reads:
                stream, after, upto = reads[execution_id]
                reads[execution_id] = (stream, after, max(upto, recorded.seq))
                continue
            held = self._held(tenant, execution_id)
            start = 0 if held is None else held.position
            position = expected.get(execution_id, start)
            if recorded.seq > position + 1:
                reads[execution_id] = (recorded.stream_id, start, recorded.seq)
            expected[execution_id] = max(position, recorded.seq)
        return reads

    def _saved_docs(self, tenant: str, execution_ids: list[str]) -> dict[str, ExecutionStatus]:
        found = ((i, self._statuses.get(tenant, i)) for i in execution_ids)
        return {i: doc for i, doc in found if doc is not None}

    def _read_missed(
        self, tenant: str, reads: dict[str, tuple[UUID, int, int]]
    ) -> dict[str, list[RecordedEvent]]:
        return {
            execution_id: self._store.read(tenant, stream, after=after, upto=upto)
            for execution_id, (stream, after, upto) in reads.items()
        }

    def _fold(
        self,
        tenant: str,
        events: Sequence[RecordedEvent],
        mine: list[tuple[str, RecordedEvent]],
    ) -> None:
        unsaved = self._unsaved[tenant]
        doc: ExecutionStatus | None = None
        folding = ""
        for execution_id, recorded in mine:
            if execution_id != folding:
                folding = execution_id
                doc = self._held(tenant, execution_id)
                if doc is None:
                    doc = empty_status(execution_id)
                    self._hold(tenant, execution_id, doc)
                unsaved[execution_id] = doc
            assert doc is not None
            fold_status(doc, recorded.seq, recorded.event)
        position = max((r.position for r in events), default=0)
        if position > self._positions.get(tenant, 0):
            self._positions[tenant] = position
        if not unsaved and tenant not in self._positions:
            del self._unsaved[tenant]

    def _held(self, tenant: str, execution_id: str) -> ExecutionStatus | None:
        doc = self._docs.get((tenant, execution_id))
        if doc is not None:
            self._docs.move_to_end((tenant, execution_id))
            return doc
        # Pushed out of the cache but not written yet: still the newest there is.
        return self._unsaved.get(tenant, {}).get(execution_id)

    def _hold(self, tenant: str, execution_id: str, doc: ExecutionStatus) -> None:
        self._docs[(tenant, execution_id)] = doc
        if len(self._docs) > self._cache_size:
            self._docs.popitem(last=False)

    # --- saving (on a worker thread) ---------------------------------------------------

    def _save_steps(self, tenant: str) -> Steps:
        """Write the tenant's changed documents with its position; on failure keep them."""
        docs = self._unsaved.pop(tenant, {})
        position = self._positions.pop(tenant, None)
        folded = self._folded[tenant]
        # Snapshots taken here, on the loop: the documents go on folding meanwhile.
        rows = [status_row(doc) for doc in docs.values()]
        if not rows and position is None:
            self._saved[tenant] = max(self._saved[tenant], folded)
            return
        waits = [] if self._signals is None else _inbox_rows(docs.values())
        try:
            if waits and self._signals is not None:
                yield partial(self._signals.save, tenant, waits)
            yield partial(self._statuses.save, tenant, rows, position)
        except BaseException:
            # Newer folds made meanwhile stay; put back what this write lost.
            self._unsaved[tenant] = docs | self._unsaved.get(tenant, {})
            if position is not None:
                self._positions[tenant] = max(position, self._positions.get(tenant, 0))
            raise
        self._saved[tenant] = max(self._saved[tenant], folded)

    # --- blocking: catch-up and rebuild, while the loop is not folding -------------------

    def apply(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """Fold events as the loop would, and save them with the position (blocking).

        Idempotent: an event at or below a document's position changes nothing. An
        event past a hole (a redelivery out of order, or a document another
        projector moved on meanwhile) first folds the hole from the store, so a
        saved document is always the fold of a whole prefix of its execution.
        """
        _run_here(self._fold_steps(tenant, events))
        if tenant in self._unsaved:
            _run_here(self._save_steps(tenant))

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
        if self._signals is not None:
            self._signals.reset(tenant)
        for key in [key for key in self._docs if key[0] == tenant]:
            del self._docs[key]
        self._unsaved.pop(tenant, None)
        self._positions.pop(tenant, None)
        return self.catch_up(tenant)


async def _run(
    steps: Steps, perform: Callable[[Blocking], Awaitable[Any]] = asyncio.to_thread
) -> None:
    """Run the steps, each blocking call of theirs through `perform` (by default on a
    worker thread, the loop going on meanwhile); a call's failure is raised in the step."""
    try:
        call = next(steps)
        while True:
            try:
                result = await perform(call)
            except BaseException as exc:
                call = steps.throw(exc)
            else:
                call = steps.send(result)
    except StopIteration:
        return


async def _in_place(call: Blocking) -> Any:
    return call()


def _run_here(steps: Steps) -> None:
    """Run the steps and their blocking calls on this thread (catch-up, rebuild): with
    calls made in place the coroutine never suspends, so one send runs it through."""
    coroutine = _run(steps, _in_place)
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a blocking fold suspended")


def _inbox_rows(docs: Iterable[ExecutionStatus]) -> list[InboxRow]:
    return [row for row in map(inbox_row, docs) if row is not None]


_EXECUTION_EVENT_TYPES = frozenset(EXECUTION_EVENT_TYPES)


def _is_execution_event(recorded: RecordedEvent) -> bool:
    return type(recorded.event) in _EXECUTION_EVENT_TYPES


def _execution_events(events: Sequence[RecordedEvent]) -> list[tuple[str, RecordedEvent]]:
    """The execution events among `events` (a bus carries process and agent events too),
    each with its execution id; one id string per run of events of one stream."""
    mine: list[tuple[str, RecordedEvent]] = []
    stream: UUID | None = None
    execution_id = ""
    for recorded in events:
        if type(recorded.event) not in _EXECUTION_EVENT_TYPES:
            continue
        if recorded.stream_id is not stream:  # equal ids from one append are one object
            stream = recorded.stream_id
            execution_id = str(stream)
        mine.append((execution_id, recorded))
    return mine
