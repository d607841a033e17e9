"""The embedded default bus: committed events handed to in-process subscribers.

Handlers are called synchronously and must only enqueue (never block), so a
slow reader cannot slow the engine down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from domain.ports import BusHandler, RecordedEvent, Unsubscribe


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[BusHandler] = []
        # Watchers by (tenant, stream): a publish costs one lookup per stream, not
        # one call per open WebSocket.
        self._watchers: dict[tuple[str, UUID], list[BusHandler]] = {}

    async def publish(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        for handler in list(self._handlers):
            handler(tenant, events)
        if not self._watchers:
            return
        by_stream: dict[UUID, list[RecordedEvent]] = {}
        for recorded in events:
            by_stream.setdefault(recorded.stream_id, []).append(recorded)
        for stream_id, mine in by_stream.items():
            for handler in list(self._watchers.get((tenant, stream_id), ())):
                handler(tenant, mine)

    def subscribe(self, handler: BusHandler) -> Unsubscribe:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    async def watch(
        self, tenant: str, stream_id: UUID, handler: BusHandler
    ) -> Callable[[], Awaitable[None]]:
        """Every later event of one stream of one tenant (the EventFeed port)."""
        key = (tenant, stream_id)
        self._watchers.setdefault(key, []).append(handler)

        async def stop() -> None:
            handlers = self._watchers.get(key, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._watchers.pop(key, None)

        return stop
