"""The live path to browsers: `/ws/executions/{id}`, a snapshot then every later event.

Subscribe first, then read the snapshot, drop what the snapshot already covers,
and fill any hole between the snapshot's position and the next live event from
the event store itself, so a lagging read model never makes a client miss one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from litestar import WebSocket, websocket
from litestar.handlers import WebsocketRouteHandler

from domain.events import TERMINAL_EVENTS, event_data, event_type
from domain.ports import EventBus, EventStore, RecordedEvent
from projections.status import TERMINAL_STATUSES
from services.api.auth import accept_authenticated
from services.api.errors import NotFound
from services.executions import ExecutionService

WS_NOT_FOUND = 4404
WS_TOO_SLOW = 1013
QUEUE_LIMIT = 10_000


def message(execution_id: str, recorded: RecordedEvent) -> dict[str, Any]:
    event = recorded.event
    return {
        "type": event_type(event),
        "execution_id": execution_id,
        "element": getattr(event, "element", None),
        "seq": recorded.seq,
        "at": event.at,
        "data": event_data(event),
    }


class ExecutionSocket:
    def __init__(self, executions: ExecutionService, bus: EventBus, store: EventStore) -> None:
        self._executions = executions
        self._bus = bus
        self._store = store

    def handler(self) -> WebsocketRouteHandler:
        @websocket("/ws/executions/{execution_id:str}")
        async def execution_socket(socket: WebSocket[Any, Any, Any], execution_id: str) -> None:
            await self.serve(socket, execution_id)

        return execution_socket

    async def serve(self, socket: WebSocket[Any, Any, Any], execution_id: str) -> None:
        identity = await accept_authenticated(socket)
        if identity is None:
            return
        tenant = identity.tenant
        queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        loop = asyncio.get_running_loop()

        def on_events(event_tenant: str, events: Sequence[RecordedEvent]) -> None:
            if event_tenant != tenant:
                return
            for recorded in events:
                if str(recorded.stream_id) == execution_id:
                    try:
                        queue.put_nowait(recorded)
                    except asyncio.QueueFull:
                        loop.call_soon(_overflow, queue)
                        return

        unsubscribe = self._bus.subscribe(on_events)
        try:
            try:
                snapshot = await self._executions.status(tenant, execution_id)
            except NotFound:
                await socket.close(code=WS_NOT_FOUND, reason="execution not found")
                return
            await socket.send_json({"type": "snapshot", "status": snapshot})
            if snapshot["status"] in TERMINAL_STATUSES:
                await socket.close(code=1000)
                return
            await self._follow(socket, tenant, execution_id, snapshot["position"], queue)
        finally:
            unsubscribe()

    async def _follow(
        self,
        socket: WebSocket[Any, Any, Any],
        tenant: str,
        execution_id: str,
        position: int,
        queue: asyncio.Queue[RecordedEvent | None],
    ) -> None:
        stream = UUID(execution_id)
        while True:
            recorded = await queue.get()
            if recorded is None:
                await socket.close(code=WS_TOO_SLOW, reason="client too slow")
                return
            if recorded.seq <= position:
                continue
            pending = [recorded]
            if recorded.seq > position + 1:
                missed = await asyncio.to_thread(
                    self._store.read, tenant, stream, after=position, upto=recorded.seq - 1
                )
                pending = [*missed, recorded]
            for item in pending:
                await socket.send_json(message(execution_id, item))
                position = item.seq
                if isinstance(item.event, TERMINAL_EVENTS):
                    await socket.close(code=1000)
                    return


def _overflow(queue: asyncio.Queue[RecordedEvent | None]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
