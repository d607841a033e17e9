"""The projector's side of NATS: `EventConsumer`, a durable pull consumer on every event.

It hands the projector batches grouped by tenant (order kept) and acks them only once
they were folded; a batch that failed is nak'ed and comes again, so the projector never
loses an event to a crash between fetch and fold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from domain.ports import RecordedEvent
from infra.bus.nats.client import NatsClient
from infra.bus.nats.codec import decode_event
from infra.bus.nats.pull import pull_batches

log = structlog.get_logger("loom.nats")

TenantBatch = tuple[str, list[RecordedEvent]]


class EventConsumer:
    """A durable pull consumer on every event; acks a batch only after it was handled."""

    def __init__(
        self, client: NatsClient, *, durable: str = "projector", batch: int = 1000
    ) -> None:
        self._client = client
        self._durable = durable
        self._batch = batch

    async def run(self, handle: Callable[[list[TenantBatch]], Awaitable[None]]) -> None:
        """Fetch, decode, group by tenant (order kept), `handle`, ack; forever."""
        s = self._client.settings
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=s.ack_wait,
            max_deliver=-1,
            max_ack_pending=20 * self._batch,
            filter_subject=f"{s.prefix}.ev.>",
        )
        pulls = pull_batches(self._client, s.events_stream, config, self._batch)
        async with contextlib.aclosing(pulls):
            async for msgs in pulls:
                await self._handle(msgs, handle)

    async def _handle(
        self, msgs: list[Msg], handle: Callable[[list[TenantBatch]], Awaitable[None]]
    ) -> None:
        batches: dict[str, list[RecordedEvent]] = {}
        for msg in msgs:
            try:
                envelope = decode_event(msg.data)
            except msgspec.DecodeError:
                log.error("undecodable event dropped", subject=msg.subject)
                continue
            batches.setdefault(envelope.tenant, []).append(envelope.recorded())
        try:
            await handle(list(batches.items()))
        except Exception:
            log.exception("events not folded; redelivering", count=len(msgs))
            for msg in msgs:
                await msg.nak(delay=1.0)
            return
        for msg in msgs:
            await msg.ack()
