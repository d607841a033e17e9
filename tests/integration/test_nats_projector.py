"""The projector role over a real NATS JetStream and PostgreSQL: it converges to the store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from domain.ports import Append, RecordedEvent
from infra.bus.nats import JetStreamPublisher, NatsClient, NatsSettings
from infra.bus.relay_state import PostgresRelayState
from infra.readmodel.status_store import PostgresStatusStore
from infra.store.postgres import PostgresEventStore, parse_postgres_url
from projections.status import ExecutionStatus, empty_status, fold_status
from services.roles.projector.projector import Projector
from services.roles.relay.relay import Relay
from tests.nats_support import end_process, eventually, execution_events, spawn_role
from tests.support import SECRETS_KEY

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


@pytest.fixture
def pg_url(postgres_url: str, postgres_schema: str) -> str:
    return f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresEventStore]:
    store = PostgresEventStore(pg_url)
    yield store
    store.close()


def folded(store: PostgresEventStore, tenant: str, stream: UUID) -> ExecutionStatus:
    doc = empty_status(str(stream))
    for recorded in store.read(tenant, stream):
        fold_status(doc, recorded.seq, recorded.event)
    return doc


def converged(
    store: PostgresEventStore, statuses: PostgresStatusStore, tenant: str, streams: list[UUID]
) -> bool:
    return all(statuses.get(tenant, str(s)) == folded(store, tenant, s) for s in streams)


async def test_the_projector_converges_after_being_killed_mid_stream(
    store: PostgresEventStore, pg_url: str, nats_url: str, tmp_path: Path
) -> None:
    env = {"LOOM_DATABASE_URL": pg_url, "LOOM_NATS_URL": nats_url, "LOOM_SECRETS_KEY": SECRETS_KEY}
    statuses = PostgresStatusStore(store.pool, store.schema)
    client = NatsClient(NatsSettings.from_url(nats_url))
    state = PostgresRelayState(store.pool, store.schema, parse_postgres_url(pg_url)[0])
    relay = Relay(store, state, JetStreamPublisher(client), poll_s=0.2)
    client.start()
    relay.open()
    projector = spawn_role("projector", env, tmp_path / "projector-1.log")
    restarted = None
    try:
        # 60 executions of 18 events, each transaction one step of 10 of them.
        streams = [uuid4() for _ in range(60)]
        plans = {s: execution_events(8, finish=True) for s in streams}
        steps = [
            [Append(s, i, [plans[s][i]]) for s in streams[g : g + 10]]
            for i in range(18)
            for g in range(0, 60, 10)
        ]
        random.Random(3).shuffle(steps)
        steps.sort(key=lambda step: step[0].after)  # each stream's steps in order

        async def write(steps: list[list[Append]]) -> None:
            for appends in steps:
                await asyncio.to_thread(store.append, "acme", appends)
                relay.wake("acme")
                await asyncio.sleep(0.02)  # a steady stream, for the kill to land mid-way

        await write(steps[:1])
        await eventually(lambda: _tracked_past(statuses, 0), 30)  # the projector is up
        writer = asyncio.create_task(write(steps[1:]))
        await eventually(lambda: _tracked_past(statuses, 60 * 18 // 4), 30)
        end_process(projector, kill=True)  # SIGKILL, mid-stream
        assert not writer.done()
        await writer
        assert not await asyncio.to_thread(converged, store, statuses, "acme", streams)

        restarted = spawn_role("projector", env, tmp_path / "projector-2.log")
        position = await asyncio.to_thread(store.max_position, "acme")
        await eventually(lambda: _tracked_past(statuses, position - 1), 30)
        await eventually(lambda: asyncio.to_thread(converged, store, statuses, "acme", streams), 10)
    finally:
        end_process(projector)
        if restarted is not None:
            end_process(restarted)
        await relay.close()
        await client.close()


async def _tracked_past(statuses: PostgresStatusStore, position: int) -> bool:
    return await asyncio.to_thread(statuses.tracking, "acme") > position


def test_duplicates_reordering_and_a_second_projector_change_no_document(
    store: PostgresEventStore,
) -> None:
    statuses = PostgresStatusStore(store.pool, store.schema)
    streams = [uuid4() for _ in range(5)]
    for stream in streams:
        store.append("acme", [Append(stream, 0, execution_events(6, finish=True))])
    recorded = store.read_all("acme", limit=1000)
    # Two projectors with caches of their own, each handed a shuffled share, some twice.
    first, second = Projector(store, statuses), Projector(store, statuses)
    rng = random.Random(7)
    deliveries: list[RecordedEvent] = recorded + rng.sample(recorded, len(recorded) // 2)
    rng.shuffle(deliveries)
    for i in range(0, len(deliveries), 7):
        chunk = deliveries[i : i + 7]
        (first if rng.random() < 0.5 else second).apply("acme", chunk)
    first.apply("acme", recorded[-1:])  # the last event reaches the first one too
    second.apply("acme", recorded[-1:])
    assert converged(store, statuses, "acme", streams)
