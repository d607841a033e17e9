"""The ports the domain and the services talk through; adapters live in infra/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

import msgspec

from domain.events import Event


class ConcurrencyError(Exception):
    """Another writer appended to the stream first (a stale expected version)."""


class StoreUnavailable(Exception):
    """The backing store cannot be reached."""


class EffectFailed(Exception):
    """An effect did not produce an output; the message is recorded in NodeFailed."""


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as the store holds it: its stream, its place there, its place in the tenant."""

    stream_id: UUID
    seq: int
    event: Event
    position: int = 0


class Append(msgspec.Struct, frozen=True):
    """New events for one stream; `after` is the stream's current last seq (0 for a new one)."""

    stream_id: UUID
    after: int
    events: Sequence[Event]


class EventStore(Protocol):
    """A tenant-partitioned event store. Calls are blocking: async code uses to_thread."""

    def append(self, tenant: str, appends: Sequence[Append]) -> list[int]:
        """Append atomically to one or more streams of one tenant.

        Returns the tenant-wide positions of the new events, in order. Raises
        ConcurrencyError (nothing written) when any stream moved past `after`.
        """
        ...

    def read(
        self, tenant: str, stream_id: UUID, *, after: int = 0, upto: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events with after < seq <= upto, in order (position is 0)."""
        ...

    def read_all(self, tenant: str, *, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """The tenant's events with position > after, in position order (positions have gaps)."""
        ...

    def max_position(self, tenant: str) -> int: ...

    def tenants(self) -> list[str]:
        """Every tenant that has a partition."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class AgentInvoker(Protocol):
    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        """Ask the LLM; answers {"text", "model", "usage"}."""
        ...


class HttpRequester(Protocol):
    async def request(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        """Perform an HTTP call; answers {"status", "headers", "body"}."""
        ...


class EventBus(Protocol):
    """Carries committed events to whoever watches them (projector, gateway)."""

    async def publish(self, tenant: str, events: Sequence[RecordedEvent]) -> None: ...

    def subscribe(self, handler: BusHandler) -> Unsubscribe: ...


class BusHandler(Protocol):
    def __call__(self, tenant: str, events: Sequence[RecordedEvent], /) -> None: ...


class Unsubscribe(Protocol):
    def __call__(self) -> None: ...


class EventFeed(Protocol):
    """Live events of one stream of one tenant (the gateway's view of the bus)."""

    async def watch(
        self, tenant: str, stream_id: UUID, handler: BusHandler
    ) -> Callable[[], Awaitable[None]]:
        """Hand `handler` every event of the stream published once this returns.

        The handler must only enqueue. The returned coroutine function stops the watch.
        """
        ...
