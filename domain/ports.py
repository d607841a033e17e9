"""The ports the domain and the services talk through; adapters live in infra/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, get_args
from uuid import UUID

import msgspec

from domain.events import Event

ExecutionState = Literal["pending", "running", "completed", "failed", "cancelled"]
"""An execution's status, as the aggregate, the read model and the API all say it."""
EXECUTION_STATES: Final[tuple[ExecutionState, ...]] = get_args(ExecutionState)
TERMINAL: Final[frozenset[ExecutionState]] = frozenset({"completed", "failed", "cancelled"})
"""The statuses an execution never leaves."""


class ConcurrencyError(Exception):
    """Another writer appended to the stream first (a stale expected version)."""


class StoreUnavailable(Exception):
    """The backing store cannot be reached."""


class EffectFailed(Exception):
    """An effect did not produce an output; the message is recorded in NodeFailed."""


class UnknownSecret(EffectFailed):
    """An element named a secret its tenant does not have (any more)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown secret {name}")
        self.name = name


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


class SecretValues(Protocol):
    async def reveal(self, tenant: str, names: Sequence[str]) -> dict[str, str]:
        """The values of the tenant's named secrets now; raises UnknownSecret for a missing one."""
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


class RelayState(Protocol):
    """Where the relay keeps its place, and its lease (adapters: infra.bus.relay_state)."""

    def position(self, tenant: str) -> int:
        """The last store position whose events the bus acknowledged (0: none yet)."""
        ...

    def save(self, positions: Mapping[str, int]) -> None:
        """Move the tenants' positions on (never back)."""
        ...

    async def lead(self) -> bool:
        """Whether this process is the one relay that publishes (takes a free lease)."""
        ...

    async def close(self) -> None: ...


class WorkItem(Protocol):
    """An execution an engine holds until it acks it (done) or naks it (again later)."""

    tenant: str
    execution_id: UUID
    deliveries: int

    async def ack(self) -> None: ...

    async def nak(self, delay: float | None = None) -> None: ...

    async def in_progress(self) -> None: ...


class WorkQueue(Protocol):
    """Executions that need an engine, shared by every engine (adapter: infra.bus.nats)."""

    @property
    def ack_wait(self) -> float:
        """Seconds an item stays held without word from its engine."""
        ...

    def items(self, room: Callable[[], Awaitable[int]]) -> AsyncIterator[WorkItem]:
        """Work items as they come, never more at once than `room()` allows."""
        ...
