"""The relay over a real NATS JetStream and PostgreSQL: every committed event, once, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import nats
import pytest

from domain.events import (
    Event,
    ProjectCreated,
)
from domain.ports import Append, RecordedEvent
from infra.bus.nats import JetStreamPublisher, NatsClient, NatsSettings, decode_event
from infra.bus.relay_state import PostgresRelayState
from infra.store.postgres import PostgresEventStore, parse_postgres_url
from services.roles.relay.relay import Relay
from tests.nats_support import (
    AT,
    NatsServer,
    delete_streams,
    eventually,
    execution_events,
    unique_nats_url,
)

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


def append_all(store: PostgresEventStore, tenant: str, stream: UUID, events: list[Event]) -> None:
    """One transaction per event: many positions, as an engine's steps would make."""
    for i, event in enumerate(events):
        store.append(tenant, [Append(stream, i, [event])])


async def stream_messages(server: str, stream: str) -> list[Any]:
    """Every message the stream holds, in stream order."""
    nc = await nats.connect(server)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return [
            await js.get_msg(stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()


async def stream_count(server: str, stream: str) -> int:
    nc = await nats.connect(server)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


@pytest.fixture
def pg_url(postgres_url: str, postgres_schema: str) -> str:
    return f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresEventStore]:
    store = PostgresEventStore(pg_url)
    yield store
    store.close()


class Rig:
    """A relay wired as the api and engine roles wire it, on its own NATS connection."""

    def __init__(self, store: PostgresEventStore, pg_url: str, nats_url: str) -> None:
        self.settings = NatsSettings.from_url(nats_url)
        self.client = NatsClient(self.settings)
        self.state = PostgresRelayState(store.pool, store.schema, parse_postgres_url(pg_url)[0])
        self.relay = Relay(store, self.state, JetStreamPublisher(self.client), poll_s=0.2)

    async def open(self) -> Rig:
        self.client.start()
        self.relay.open()
        return self

    async def close(self) -> None:
        await self.relay.close()
        await self.client.close()


@pytest.fixture
async def rigs(store: PostgresEventStore, pg_url: str, nats_url: str) -> AsyncIterator[Any]:
    opened: list[Rig] = []

    async def rig() -> Rig:
        opened.append(await Rig(store, pg_url, nats_url).open())
        return opened[-1]

    yield rig
    for r in opened:
        await r.close()


async def test_the_relay_publishes_every_committed_event_once_in_order_and_resumes_after_a_restart(
    store: PostgresEventStore, rigs: Any, nats_server: str
) -> None:
    first = await rigs()
    settings = first.settings
    running, finished = uuid4(), uuid4()
    await asyncio.to_thread(append_all, store, "acme", running, execution_events(5, finish=False))
    # A run of pure elements is one transaction: relayed in one batch, it needs no engine.
    store.append("acme", [Append(finished, 0, execution_events(4, finish=True))])
    store.append("acme", [Append(uuid4(), 0, [ProjectCreated(at=AT, actor="t", name="Sales")])])
    count = 11 + 10 + 1
    first.relay.wake("acme")
    await eventually(lambda: _count_is(nats_server, settings.events_stream, count))

    await first.close()
    later = uuid4()
    store.append("acme", [Append(later, 0, execution_events(3, finish=True))])
    store.append("beta", [Append(uuid4(), 0, execution_events(2, finish=True))])
    count += 8 + 6
    await rigs()  # a new relay resumes from the saved position
    await eventually(lambda: _count_is(nats_server, settings.events_stream, count))

    messages = await stream_messages(nats_server, settings.events_stream)
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(ids) == len(set(ids)) == count
    for tenant in ("acme", "beta"):
        envelopes = [decode_event(m.data) for m in messages]
        mine = [e for e in envelopes if e.tenant == tenant]
        stored = store.read_all(tenant, limit=10_000)
        assert [(e.stream_id, e.seq, e.position) for e in mine] == [
            (r.stream_id, r.seq, r.position) for r in stored
        ], "every committed event, in commit order"
        for envelope, message in zip(envelopes, messages, strict=True):
            assert message.subject == f"{settings.prefix}.ev.{envelope.tenant}.{envelope.stream_id}"
            assert message.headers["Nats-Msg-Id"] == (
                f"{envelope.tenant}:{envelope.stream_id}:{envelope.seq}"
            )

    # Only the execution still running needs an engine.
    work = await stream_messages(nats_server, settings.work_stream)
    assert [m.subject for m in work] == [f"{settings.prefix}.work.acme.{running}"]


async def test_a_relay_that_lost_its_position_publishes_nothing_twice(
    store: PostgresEventStore, rigs: Any, nats_server: str
) -> None:
    rig = await rigs()
    await asyncio.to_thread(append_all, store, "acme", uuid4(), execution_events(10, finish=True))
    await eventually(lambda: _count_is(nats_server, rig.settings.events_stream, 22))
    await rig.close()

    with store.pool.connection() as conn:
        conn.execute(f"DELETE FROM {store.schema}.loom_relay")
    again = await rigs()
    await eventually(lambda: _saved(again.state, "acme", 22))
    assert await stream_count(nats_server, rig.settings.events_stream) == 22  # dropped by Msg-Id


async def test_one_relay_publishes_while_several_run_and_another_takes_over_when_it_stops(
    store: PostgresEventStore, rigs: Any, nats_server: str
) -> None:
    one, two = await rigs(), await rigs()
    await asyncio.to_thread(append_all, store, "acme", uuid4(), execution_events(5, finish=True))
    await eventually(lambda: _count_is(nats_server, one.settings.events_stream, 12))
    assert sorted([one.relay.published, two.relay.published]) == [0, 12]

    leader, other = (one, two) if one.relay.published else (two, one)
    await leader.close()
    await asyncio.to_thread(append_all, store, "acme", uuid4(), execution_events(5, finish=True))
    await eventually(lambda: _count_is(nats_server, one.settings.events_stream, 24))
    assert other.relay.published == 12


async def test_events_stored_while_nats_is_down_are_published_in_order_once_it_is_back(
    store: PostgresEventStore, pg_url: str
) -> None:
    server = NatsServer().start()
    url, prefix = unique_nats_url(server.url)
    rig = await Rig(store, pg_url, url).open()
    try:
        stream = uuid4()
        events = execution_events(24, finish=True)  # 50 events
        await asyncio.to_thread(append_all, store, "acme", stream, events[:10])
        await eventually(lambda: _count_is(server.url, rig.settings.events_stream, 10))

        server.stop()
        started = time.monotonic()
        for i, event in enumerate(events[10:], start=10):  # the store takes them meanwhile
            await asyncio.to_thread(store.append, "acme", [Append(stream, i, [event])])
            rig.relay.wake("acme")
            await asyncio.sleep(0.02)
        await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
        assert not rig.client.is_connected

        server.start()
        await eventually(lambda: _count_is(server.url, rig.settings.events_stream, 50), 20)
        messages = await stream_messages(server.url, rig.settings.events_stream)
        assert [decode_event(m.data).seq for m in messages] == list(range(1, 51))
    finally:
        await rig.close()
        await delete_streams(server.url, prefix)
        server.cleanup()


async def _count_is(server: str, stream: str, expected: int) -> bool:
    count = await stream_count(server, stream)
    assert count <= expected, f"{count} messages, expected {expected}: something went twice"
    return count == expected


async def _saved(state: PostgresRelayState, tenant: str, position: int) -> bool:
    return await asyncio.to_thread(state.position, tenant) >= position


async def test_an_execution_is_queued_for_the_engines_once_however_often_it_is_queued(
    nats_url: str, nats_server: str
) -> None:
    client = NatsClient(NatsSettings.from_url(nats_url))
    publisher = JetStreamPublisher(client)
    await client.connected(10)
    try:
        execution = uuid4()
        for _ in range(3):  # the relay, then a requeue of running executions, twice
            await publisher.publish_work("acme", [execution])
        assert await stream_count(nats_server, client.settings.work_stream) == 1
    finally:
        await client.close()


async def test_events_a_local_writer_hands_over_go_out_in_order_with_those_it_did_not(
    store: PostgresEventStore, rigs: Any, nats_server: str
) -> None:
    rig = await rigs()
    warm = uuid4()
    store.append("acme", [Append(warm, 0, execution_events(0, finish=True))])
    await eventually(lambda: _count_is(nats_server, rig.settings.events_stream, 2))

    stream = uuid4()
    events = execution_events(10, finish=True)
    handed: list[RecordedEvent] = []
    for i, event in enumerate(events):
        [position] = await asyncio.to_thread(store.append, "acme", [Append(stream, i, [event])])
        if i % 3 == 1:
            # Written without a word to the relay, as a process save is: a hole to read.
            await asyncio.to_thread(
                store.append,
                "acme",
                [Append(uuid4(), 0, [ProjectCreated(at=AT, actor="t", name="x")])],
            )
        handed.append(RecordedEvent(stream, i + 1, event, position))
        if i % 4 == 3:  # handed over late and out of order, two at a time
            rig.relay.wake("acme", handed[::-1])
            handed = []
    rig.relay.wake("acme", handed)
    total = 2 + len(events) + sum(1 for i in range(len(events)) if i % 3 == 1)
    await eventually(lambda: _count_is(nats_server, rig.settings.events_stream, total))
    messages = await stream_messages(nats_server, rig.settings.events_stream)
    positions = [decode_event(m.data).position for m in messages]
    assert positions == [r.position for r in store.read_all("acme", limit=1000)]
