"""The durable pull loop under both JetStream consumers: `pull_batches`.

The projector's `EventConsumer` and the engines' `WorkQueue` read the same way: declare
the durable consumer, bind to it, fetch, and on any NATS failure drop the subscription
and declare it again, so that a server that restarted or lost its storage is followed
without the caller noticing more than a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from infra.bus.nats.client import NatsClient

log = structlog.get_logger("loom.nats")


async def pull_batches(
    client: NatsClient,
    stream: str,
    config: ConsumerConfig,
    batch: int | Callable[[], Awaitable[int]],
) -> AsyncGenerator[list[Msg], None]:
    """Batches from a durable pull consumer, (re)declaring it whenever it went missing."""
    subscription: JetStreamContext.PullSubscription | None = None
    try:
        while True:
            try:
                if subscription is None:
                    js = await client.jetstream()
                    await js.add_consumer(stream, config)
                    subscription = await js.pull_subscribe_bind(
                        durable=config.durable_name, stream=stream
                    )
                size = batch if isinstance(batch, int) else await batch()
                # Wait for the first message alone (a batch fetch would wait to fill the
                # batch), then take whatever else is there already.
                msgs = await subscription.fetch(1, timeout=1.0)
                if size > 1:
                    with contextlib.suppress(TimeoutError):
                        msgs += await subscription.fetch(size - 1, timeout=0.005)
            except TimeoutError:
                continue
            except (nats.errors.Error, nats.js.errors.Error) as exc:
                log.warning("pull consumer failing; retrying", stream=stream, error=str(exc))
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
                    subscription = None
                await asyncio.sleep(1.0)
                continue
            yield msgs
    finally:
        if subscription is not None:
            # Unsubscribe before the connection closes: a drain after a timed-out
            # fetch hangs for 30 s.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
