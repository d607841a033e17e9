"""The embedded default bus: committed events handed to in-process subscribers.

Handlers are called synchronously and must only enqueue (never block), so a
slow reader cannot slow the engine down.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.ports import BusHandler, RecordedEvent, Unsubscribe


class InProcessBus:
    def __init__(self) -> None:
        self._handlers: list[BusHandler] = []

    async def publish(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        for handler in list(self._handlers):
            handler(tenant, events)

    def subscribe(self, handler: BusHandler) -> Unsubscribe:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe
