"""The relay's side of NATS: `JetStreamPublisher` publishes committed events and work items.

Events go out pipelined and the acks are awaited apart, so the relay can publish its next
batch meanwhile; a batch not acknowledged in full raises `PublishFailed` and the relay
starts over from what was acknowledged (JetStream drops the duplicates by message id).
Writers also wake the relay through here, over core NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from domain.ports import RecordedEvent
from infra.bus.nats.client import NatsClient
from infra.bus.nats.codec import encode_event
from infra.bus.nats.subjects import (
    MSG_ID,
    event_msg_id,
    event_subject,
    wake_subject,
    work_msg_id,
    work_subject,
)
from infra.store.naming import validate_tenant

_ONE_PER_SUBJECT = 10077  # JetStream: "maximum messages per subject exceeded"


class PublishFailed(Exception):
    """JetStream did not acknowledge every message of a batch (none is assumed stored)."""


class JetStreamPublisher:
    """Publishes committed events and work items, pipelined, waiting for every ack."""

    def __init__(self, client: NatsClient, *, ack_timeout: float = 5.0) -> None:
        self._client = client
        self._ack_timeout = ack_timeout

    @property
    def prefix(self) -> str:
        return self._client.settings.prefix

    async def send(self, tenant: str, events: Sequence[RecordedEvent]) -> Awaitable[None]:
        """Publish the events in order, now; what it returns settles once JetStream has
        acknowledged every one of them, or raises PublishFailed.

        Waiting for the acks apart lets the relay publish its next batch meanwhile.
        """
        if not self._client.is_connected:
            raise PublishFailed("not connected to NATS")
        js = await self._client.jetstream()
        futures: list[asyncio.Future[Any]] = []
        try:
            for r in events:
                futures.append(
                    await js.publish_async(
                        event_subject(self.prefix, tenant, r.stream_id),
                        encode_event(tenant, r),
                        headers={MSG_ID: event_msg_id(tenant, r)},
                    )
                )
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            for future in futures:
                future.cancel()
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        return asyncio.ensure_future(self._acks(futures))

    async def _acks(self, futures: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self._ack_timeout)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            for future in futures:
                future.cancel()  # frees nats-py's in-flight slot of any ack still awaited

    async def publish_work(
        self, tenant: str, execution_ids: Sequence[UUID], woken: Sequence[tuple[UUID, int]] = ()
    ) -> None:
        """Queue each execution for an engine, unless an item for it is queued or held already.

        `woken`: (execution, seq of the event that woke it), queued under an id of that
        event, so an execution whose earlier item was acked within the deduplication
        window is queued again.
        """
        if not execution_ids and not woken:
            return
        if not self._client.is_connected:
            raise PublishFailed("not connected to NATS")
        js = await self._client.jetstream()

        async def queue(execution_id: UUID, seq: int | None = None) -> None:
            msg_id = work_msg_id(tenant, execution_id)
            if seq is not None:
                msg_id += f":{seq}"
            # Not publish_async: nats-py never settles its future on an API error.
            try:
                await js.publish(
                    work_subject(self.prefix, tenant, execution_id),
                    b"",
                    timeout=self._ack_timeout,
                    headers={MSG_ID: msg_id},
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code != _ONE_PER_SUBJECT:
                    raise

        try:
            await asyncio.gather(
                *(queue(e) for e in execution_ids), *(queue(e, seq) for e, seq in woken)
            )
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc

    async def wake(self, tenant: str) -> None:
        """Tell the relay, wherever it runs, that `tenant` has new events (best effort)."""
        if self._client.is_connected:
            nc = await self._client.connected()
            await nc.publish(wake_subject(self.prefix), tenant.encode())

    async def on_wake(self, handler: Callable[[str], None]) -> Subscription:
        nc = await self._client.connected()

        async def deliver(msg: Msg) -> None:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                handler(validate_tenant(msg.data.decode()))

        return await nc.subscribe(wake_subject(self.prefix), cb=deliver)
