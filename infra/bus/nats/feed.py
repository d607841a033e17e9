"""The gateway's side of NATS: `NatsEventFeed`, the live events of the executions watched.

Core NATS, not JetStream: a watcher wants what happens from now on, and reads what came
before from the store. One subscription per watched execution, shared by every local
watcher of it; `FeedUnavailable` when NATS cannot be reached in time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from uuid import UUID

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from domain.ports import BusHandler
from infra.bus.nats.client import NatsClient
from infra.bus.nats.codec import decode_event
from infra.bus.nats.subjects import event_subject

log = structlog.get_logger("loom.nats")


class FeedUnavailable(Exception):
    """The live feed cannot be followed now (NATS unreachable)."""


class _Watched:
    """One core subscription on one execution's subject, shared by every local watcher."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.handlers: list[BusHandler] = []
        self.subscription: Subscription | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def deliver(self, msg: Msg) -> None:
        try:
            envelope = decode_event(msg.data)
        except msgspec.DecodeError:
            log.warning("undecodable event on the bus", subject=msg.subject)
            return
        if envelope.tenant != self.tenant:
            return  # cannot happen with our subjects; never let it through anyway
        events = [envelope.recorded()]
        for handler in list(self.handlers):
            handler(self.tenant, events)


class NatsEventFeed:
    """The gateway's live events: one core subscription per watched execution.

    The subject is built from the authenticated tenant and a parsed UUID, so a
    watcher only ever sees that one execution of its own tenant. Watchers of the
    same execution share one subscription and are each handed every event.
    """

    def __init__(self, client: NatsClient, *, connect_timeout: int = 5) -> None:
        self._client = client
        self._connect_timeout = connect_timeout
        self._watched: dict[str, _Watched] = {}

    async def watch(
        self, tenant: str, stream_id: UUID, handler: BusHandler
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler` with every event of the stream published from now on.

        Returns once the server has the subscription (so nothing published after
        that is missed); the returned coroutine function stops the watch.
        """
        subject = event_subject(self._client.settings.prefix, tenant, stream_id)
        watched = self._watched.get(subject)
        if watched is None:
            watched = self._watched[subject] = _Watched(tenant)
            watched.handlers.append(handler)
            try:
                nc = await self._client.connected(self._connect_timeout)
                watched.subscription = await nc.subscribe(subject, cb=watched.deliver)
                await nc.flush(timeout=self._connect_timeout)
            except (TimeoutError, nats.errors.Error) as exc:
                self._watched.pop(subject, None)
                if watched.subscription is not None:
                    with contextlib.suppress(Exception):
                        await watched.subscription.unsubscribe()
                watched.ready.set_exception(FeedUnavailable(str(exc)))
                watched.ready.exception()  # retrieved: later watchers see it, none warns
                raise FeedUnavailable(f"NATS unavailable: {exc}") from exc
            watched.ready.set_result(None)
        else:
            watched.handlers.append(handler)
            await asyncio.shield(watched.ready)

        async def stop() -> None:
            if handler in watched.handlers:
                watched.handlers.remove(handler)
            if not watched.handlers and self._watched.get(subject) is watched:
                del self._watched[subject]
                if watched.subscription is not None:
                    with contextlib.suppress(Exception):
                        await watched.subscription.unsubscribe()

        return stop
