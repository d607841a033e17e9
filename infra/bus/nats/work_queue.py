"""The engines' side of NATS: `WorkQueue` and the `WorkItem`s it hands out.

One durable pull consumer on the work-queue stream, shared by every engine: an item is
an execution that needs an engine, held by one engine until it acks it (done), naks it
(again later, e.g. at its next timer) or goes silent past `ack_wait` (another engine
gets it). The stream holds at most one item per execution, so two engines never hold
the same one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from infra.bus.nats.client import NatsClient
from infra.bus.nats.pull import pull_batches
from infra.bus.nats.subjects import subject_tail

log = structlog.get_logger("loom.nats")


class WorkItem:
    """An execution an engine holds until it is done with it (or until ack_wait lapses)."""

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.tenant, self.execution_id = subject_tail(msg.subject)
        self.deliveries = msg.metadata.num_delivered

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Hand it back, to be redelivered (to any engine) after `delay` seconds."""
        await self._msg.nak(delay=delay)

    async def in_progress(self) -> None:
        """Still working on it: restart the ack_wait clock."""
        await self._msg.in_progress()


class WorkQueue:
    """The work-queue stream's one durable pull consumer, shared by every engine."""

    def __init__(self, client: NatsClient, *, durable: str = "engine") -> None:
        self._client = client
        self._durable = durable

    @property
    def ack_wait(self) -> float:
        return self._client.settings.ack_wait

    async def items(self, room: Callable[[], Awaitable[int]]) -> AsyncIterator[WorkItem]:
        """Work items as they come, never more at once than `room()` allows."""
        s = self._client.settings
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait,
            max_deliver=-1,  # a parked execution is redelivered once per timer
            max_ack_pending=-1,  # parked executions stay pending; engines bound themselves
            filter_subject=f"{s.prefix}.work.>",
        )
        pulls = pull_batches(self._client, s.work_stream, config, room)
        async with contextlib.aclosing(pulls):
            async for msgs in pulls:
                for msg in msgs:
                    try:
                        item = WorkItem(msg)
                    except ValueError:
                        log.error("malformed work item dropped", subject=msg.subject)
                        await msg.term()
                        continue
                    yield item
