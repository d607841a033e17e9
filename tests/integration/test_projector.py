"""The in-process projector on real SQLite files: what it holds in memory and what it saves."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.ports import Append, RecordedEvent, StoreUnavailable
from infra.readmodel.status_store import SQLiteStatusStore, StatusRow
from infra.store.sqlite import SQLiteEventStore
from projections.status import ExecutionStatus, empty_status, fold_status
from services.roles.projector import projector as projector_module
from services.roles.projector.projector import Projector
from tests.nats_support import execution_events


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    store = SQLiteEventStore(str(tmp_path / "events.db"))
    yield store
    store.close()


@pytest.fixture
def statuses(tmp_path: Path) -> Iterator[SQLiteStatusStore]:
    statuses = SQLiteStatusStore(str(tmp_path / "read.db"))
    yield statuses
    statuses.close()


def commit(
    store: SQLiteEventStore, stream: UUID, after: int, events: list[Any]
) -> list[RecordedEvent]:
    """Append to the store and hand back what the engine would publish (with positions)."""
    store.append("acme", [Append(stream, after, events)])
    every = store.read_all("acme", limit=10_000)
    return [r for r in every if r.stream_id == stream and r.seq > after]


def folded(store: SQLiteEventStore, stream: UUID) -> ExecutionStatus:
    doc = empty_status(str(stream))
    for recorded in store.read("acme", stream):
        fold_status(doc, recorded.seq, recorded.event)
    return doc


async def test_a_delivered_start_is_readable_at_once_and_saved_after_the_linger(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    projector = Projector(store, statuses)
    projector.open()
    stream = uuid4()
    projector.deliver("acme", commit(store, stream, 0, execution_events(2, finish=True)))
    # Read your writes: no wait, no read model yet.
    assert await projector.current("acme", str(stream)) == folded(store, stream)
    assert statuses.get("acme", str(stream)) is None
    assert await projector.current("other", str(stream)) is None
    await asyncio.wait_for(projector.settled(), timeout=10)
    assert statuses.get("acme", str(stream)) == folded(store, stream)
    assert statuses.tracking("acme") == store.read_all("acme", limit=100)[-1].position
    await projector.close()


async def test_a_current_document_is_a_copy(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    projector = Projector(store, statuses)
    stream = uuid4()
    events = execution_events(2, finish=False)
    projector.deliver("acme", commit(store, stream, 0, events))
    seen = await projector.current("acme", str(stream))
    assert seen is not None
    projector.deliver(
        "acme", commit(store, stream, len(events), execution_events(0, finish=True)[1:])
    )
    assert seen.status == "running"
    assert await projector.current("acme", str(stream)) == folded(store, stream)


async def test_an_execution_it_never_saw_is_folded_from_the_saved_document_and_the_store(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    stream = uuid4()
    first = commit(store, stream, 0, execution_events(3, finish=False))
    Projector(store, statuses).apply("acme", first[:3])  # an earlier process saved a prefix
    projector = Projector(store, statuses)  # a fresh one, after a restart
    projector.open()
    # It is handed events 6 and 7 only: 4 and 5 it must read from the store.
    later = commit(store, stream, len(first), execution_events(0, finish=True)[1:])
    projector.deliver("acme", first[5:] + later)
    # Queued behind a read, yet current at once: the store has every event.
    assert await projector.current("acme", str(stream)) == folded(store, stream)
    await asyncio.wait_for(projector.settled(), timeout=10)
    assert await projector.current("acme", str(stream)) == folded(store, stream)
    assert statuses.get("acme", str(stream)) == folded(store, stream)
    assert statuses.get("acme", str(stream)).status == "completed"
    await projector.close()


class FlakyStatuses:
    """The real read model, refusing its first `failures` saves as an unreachable store would."""

    def __init__(self, statuses: SQLiteStatusStore, failures: int) -> None:
        self._statuses = statuses
        self.failures = failures

    def save(self, tenant: str, rows: Sequence[StatusRow], position: int | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("disk is away")
        self._statuses.save(tenant, rows, position)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._statuses, name)


async def test_a_failed_save_loses_nothing_and_is_written_again(
    store: SQLiteEventStore, statuses: SQLiteStatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projector_module, "RETRY_S", 0.05)
    flaky = FlakyStatuses(statuses, failures=2)
    projector = Projector(store, flaky)
    projector.open()
    streams = [uuid4() for _ in range(3)]
    for stream in streams:
        projector.deliver("acme", commit(store, stream, 0, execution_events(1, finish=True)))
    await asyncio.wait_for(projector.settled(), timeout=10)
    assert flaky.failures == 0
    assert all(statuses.get("acme", str(s)) == folded(store, s) for s in streams)
    assert statuses.tracking("acme") == store.read_all("acme", limit=100)[-1].position
    await projector.close()


async def test_shuffled_and_repeated_batches_from_two_projectors_converge_to_the_store(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    streams = [uuid4() for _ in range(6)]
    for stream in streams:
        commit(store, stream, 0, execution_events(5, finish=True))
    recorded = store.read_all("acme", limit=1000)
    # As a JetStream consumer may hand them over: out of order, some twice, to either one.
    first, second = Projector(store, statuses), Projector(store, statuses)
    rng = random.Random(11)
    deliveries = recorded + rng.sample(recorded, len(recorded) // 2)
    rng.shuffle(deliveries)
    for i in range(0, len(deliveries), 5):
        chosen = first if rng.random() < 0.5 else second
        await chosen.fold_batches([("acme", deliveries[i : i + 5])])
    for projector in (first, second):
        await projector.fold_batches([("acme", recorded[-1:])])
    for stream in streams:
        assert statuses.get("acme", str(stream)) == folded(store, stream)
    # What each one holds is a fold of a whole prefix of the execution, never a patchwork.
    for projector in (first, second):
        for stream in streams:
            held = await projector.current("acme", str(stream))
            if held is not None:
                prefix = empty_status(str(stream))
                for r in store.read("acme", stream, upto=held.position):
                    fold_status(prefix, r.seq, r.event)
                assert held == prefix


async def test_a_document_never_goes_back_while_other_events_wait_on_reads(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    projector = Projector(store, statuses)  # not open: nothing is saved meanwhile
    done, other = uuid4(), uuid4()
    projector.deliver("acme", commit(store, done, 0, execution_events(1, finish=True)))
    # An execution it never saw, mid-way: its events must wait on a read.
    first = commit(store, other, 0, execution_events(2, finish=False))
    later = commit(store, other, len(first), execution_events(0, finish=True)[1:])
    projector.deliver("acme", later)
    assert projector.backlog == 1
    assert (await projector.current("acme", str(done))).status == "completed"
    assert await projector.current("acme", str(other)) == folded(store, other)


async def test_a_failed_consumer_batch_leaves_nothing_behind_and_is_folded_when_redelivered(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    flaky = FlakyStatuses(statuses, failures=1)
    projector = Projector(store, flaky)
    stream = uuid4()
    batch = [("acme", commit(store, stream, 0, execution_events(1, finish=True)))]
    with pytest.raises(StoreUnavailable):
        await projector.fold_batches(batch)
    assert projector.backlog == 0
    await asyncio.wait_for(projector.settled(), timeout=1)  # a consumer's projector: no wait
    await projector.fold_batches(batch)  # the bus delivers it again
    assert statuses.get("acme", str(stream)) == folded(store, stream)


class BrokenFor:
    """The real read model, whose saved document of one execution cannot be read (a bug)."""

    def __init__(self, statuses: SQLiteStatusStore, execution_id: str) -> None:
        self._statuses = statuses
        self._broken = execution_id
        self.reads = 0

    def get(self, tenant: str, execution_id: str) -> ExecutionStatus | None:
        if execution_id == self._broken:
            self.reads += 1
            raise ValueError("unreadable document")
        return self._statuses.get(tenant, execution_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._statuses, name)


async def test_events_that_keep_failing_to_fold_are_dropped_and_the_rest_go_on(
    store: SQLiteEventStore, statuses: SQLiteStatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projector_module, "RETRY_S", 0.01)
    broken, fine = uuid4(), uuid4()
    first = commit(store, broken, 0, execution_events(1, finish=False))
    reading = BrokenFor(statuses, str(broken))
    projector = Projector(store, reading)
    projector.open()
    projector.deliver(
        "acme", commit(store, broken, len(first), execution_events(0, finish=True)[1:])
    )
    projector.deliver("acme", commit(store, fine, 0, execution_events(1, finish=True)))
    await asyncio.wait_for(projector.settled(), timeout=10)
    assert reading.reads == projector_module.MAX_FAILURES
    assert statuses.get("acme", str(fine)) == folded(store, fine)
    assert projector.backlog == 0
    await projector.close()


async def test_a_fold_failing_as_it_is_delivered_never_reaches_the_engine(
    store: SQLiteEventStore, statuses: SQLiteStatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = projector_module.fold_status
    calls = 0

    def fails_once(doc: ExecutionStatus, seq: int, event: Any) -> ExecutionStatus:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the fold")
        return real(doc, seq, event)

    monkeypatch.setattr(projector_module, "fold_status", fails_once)
    projector = Projector(store, statuses)
    projector.open()
    stream = uuid4()
    projector.deliver("acme", commit(store, stream, 0, execution_events(1, finish=True)))
    await asyncio.wait_for(projector.settled(), timeout=10)
    assert statuses.get("acme", str(stream)) == folded(store, stream)
    await projector.close()


async def test_saved_answers_once_what_was_delivered_is_saved_and_not_before(
    store: SQLiteEventStore, statuses: SQLiteStatusStore
) -> None:
    projector = Projector(store, statuses)
    projector.open()
    stream = uuid4()
    projector.deliver("acme", commit(store, stream, 0, execution_events(2, finish=True)))
    assert statuses.get("acme", str(stream)) is None  # folded in memory, not saved yet
    assert await projector.saved("acme", timeout=10)
    # What a list then reads is what the status showed.
    assert statuses.get("acme", str(stream)) == await projector.current("acme", str(stream))
    assert await projector.saved("other", timeout=0)  # nothing of it was delivered
    await projector.close()


async def test_saved_gives_up_within_its_timeout_while_the_read_model_is_away(
    store: SQLiteEventStore, statuses: SQLiteStatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projector_module, "RETRY_S", 0.05)
    flaky = FlakyStatuses(statuses, failures=1_000_000)
    projector = Projector(store, flaky)
    projector.open()
    stream = uuid4()
    projector.deliver("acme", commit(store, stream, 0, execution_events(1, finish=True)))
    assert not await asyncio.wait_for(projector.saved("acme", timeout=0.3), timeout=5)
    flaky.failures = 0  # back
    assert await projector.saved("acme", timeout=10)
    assert statuses.get("acme", str(stream)) == folded(store, stream)
    await projector.close()
