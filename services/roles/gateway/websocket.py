"""The live path to browsers: `/ws/executions/{id}`, a snapshot then every later event.

Subscribe first, then read the snapshot, drop what the snapshot already covers,
and fill any hole between the snapshot's position and the next live event from
the event store itself, so a lagging read model never makes a client miss one.
Right after the snapshot, and whenever the feed has been quiet for `resync_s`,
the store is asked for anything past the last event sent: an event published
before the subscription took (or lost by a live feed that reconnected) still
reaches the client, terminal events included.

Heartbeats are WebSocket ping frames, sent by the server (uvicorn's
ws_ping_interval); no application message other than the contract's is sent.

A session lasts as long as its token: when the token's `exp` passes, the
socket is closed with 4401 (`token expired`), whether events flow or not.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar import WebSocket, websocket
from litestar.handlers import WebsocketRouteHandler
from litestar.params import FromPath

from domain.events import TERMINAL_EVENTS, event_data, event_type
from domain.ports import TERMINAL, EventFeed, EventStore, RecordedEvent
from projections.status import ExecutionStatus
from services.roles.auth import WS_UNAUTHENTICATED, accept_authenticated, session_expires_at
from services.usecases.errors import NotFound
from services.usecases.executions import ExecutionService

WS_NOT_FOUND = 4404
WS_TOO_SLOW = 1013
WS_TRY_AGAIN = 1013
QUEUE_LIMIT = 10_000
RESYNC_S = 10.0
TEXT_CACHE = 4096

_encoder = msgspec.json.Encoder()


class SnapshotMessage(msgspec.Struct, kw_only=True):
    """The first message of a session: the execution's status document."""

    type: Literal["snapshot"] = "snapshot"
    status: ExecutionStatus


class EventMessage(msgspec.Struct, kw_only=True):
    """Every later message: one event of the execution, `type` naming it."""

    type: str
    execution_id: str
    element: str | None
    seq: int
    at: str
    data: dict[str, Any]


def message(execution_id: str, recorded: RecordedEvent) -> EventMessage:
    event = recorded.event
    return EventMessage(
        type=event_type(event),
        execution_id=execution_id,
        element=getattr(event, "element", None),
        seq=recorded.seq,
        at=event.at,
        data=event_data(event),
    )


class ExecutionSocket:
    def __init__(
        self,
        executions: ExecutionService,
        feed: EventFeed,
        store: EventStore,
        *,
        resync_s: float = RESYNC_S,
    ) -> None:
        self._executions = executions
        self._feed = feed
        self._store = store
        self._resync_s = resync_s
        # Every watcher of an execution sends the same text: encode each event once.
        self._texts: OrderedDict[tuple[str, str, int], str] = OrderedDict()

    def handler(self) -> WebsocketRouteHandler:
        @websocket("/ws/executions/{execution_id:str}")
        async def execution_socket(
            socket: WebSocket[Any, Any, Any], execution_id: FromPath[str]
        ) -> None:
            await self.serve(socket, execution_id)

        return execution_socket

    async def serve(self, socket: WebSocket[Any, Any, Any], execution_id: str) -> None:
        identity = await accept_authenticated(socket)
        if identity is None:
            return
        expires_at = session_expires_at(socket)
        tenant = identity.tenant
        try:
            # Parsed before it names a subscription: no wildcard ever reaches the bus.
            stream = UUID(execution_id)
        except ValueError:
            await socket.close(code=WS_NOT_FOUND, reason="execution not found")
            return
        queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        loop = asyncio.get_running_loop()

        def on_events(event_tenant: str, events: Sequence[RecordedEvent]) -> None:
            if event_tenant != tenant:
                return
            for recorded in events:
                if recorded.stream_id == stream:
                    try:
                        queue.put_nowait(recorded)
                    except asyncio.QueueFull:
                        loop.call_soon(_overflow, queue)
                        return

        try:
            unsubscribe = await self._feed.watch(tenant, stream, on_events)
        except Exception:
            await socket.close(code=WS_TRY_AGAIN, reason="live feed unavailable; retry")
            return
        try:
            try:
                snapshot = await self._executions.status(tenant, execution_id)
            except NotFound:
                await socket.close(code=WS_NOT_FOUND, reason="execution not found")
                return
            await socket.send_text(_encoder.encode(SnapshotMessage(status=snapshot)).decode())
            if snapshot.status in TERMINAL:
                await socket.close(code=1000)
                return
            await self._follow(socket, tenant, execution_id, snapshot.position, queue, expires_at)
        finally:
            await unsubscribe()

    def _text(self, tenant: str, execution_id: str, recorded: RecordedEvent) -> str:
        key = (tenant, execution_id, recorded.seq)
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = _encoded(execution_id, recorded)
            if len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return text

    async def _follow(
        self,
        socket: WebSocket[Any, Any, Any],
        tenant: str,
        execution_id: str,
        position: int,
        queue: asyncio.Queue[RecordedEvent | None],
        expires_at: float | None,
    ) -> None:
        stream = UUID(execution_id)
        pending = await asyncio.to_thread(self._store.read, tenant, stream, after=position)
        while True:
            for recorded in pending:
                if recorded.seq <= position:
                    continue
                items = [recorded]
                if recorded.seq > position + 1:
                    missed = await asyncio.to_thread(
                        self._store.read, tenant, stream, after=position, upto=recorded.seq - 1
                    )
                    items = [*missed, recorded]
                for item in items:
                    if _expired(expires_at):
                        await _close_expired(socket)
                        return
                    await socket.send_text(self._text(tenant, execution_id, item))
                    position = item.seq
                    if isinstance(item.event, TERMINAL_EVENTS):
                        await socket.close(code=1000)
                        return
            wait_s = self._resync_s
            if expires_at is not None:
                wait_s = min(wait_s, max(expires_at - time.time(), 0.0))
            try:
                live = await asyncio.wait_for(queue.get(), wait_s)
            except TimeoutError:
                if _expired(expires_at):
                    await _close_expired(socket)
                    return
                pending = await asyncio.to_thread(self._store.read, tenant, stream, after=position)
                continue
            if live is None:
                await socket.close(code=WS_TOO_SLOW, reason="client too slow")
                return
            pending = [live]


def _expired(expires_at: float | None) -> bool:
    # `exp` is wall-clock time, as the token's issuer meant it.
    return expires_at is not None and time.time() >= expires_at


async def _close_expired(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.close(code=WS_UNAUTHENTICATED, reason="token expired")


def _encoded(execution_id: str, recorded: RecordedEvent) -> str:
    return _encoder.encode(message(execution_id, recorded)).decode()


def _overflow(queue: asyncio.Queue[RecordedEvent | None]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
