"""One process's connection to NATS: `NatsClient`, and the two streams it declares.

Every other piece of the bus (publisher, feed, consumer, work queue) holds a client and
asks it for the connection or the JetStream context when it needs one. The client
connects in the background and never gives up, so a role starts while NATS is away and
the store keeps the events meanwhile; the streams are declared after every (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import nats
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from infra.bus.nats.settings import NatsSettings

log = structlog.get_logger("loom.nats")


class NatsClient:
    """One process's connection to NATS: connects in the background and never gives up.

    Until it is connected, `connected()` waits; a dropped connection reconnects by
    itself (nats-py re-subscribes everything), and the streams are declared again
    after each (re)connect, so a server that lost its storage gets them back.
    """

    def __init__(self, settings: NatsSettings, *, name: str = "loom") -> None:
        self.settings = settings
        self._name = name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._error_logged = -1e9

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._connect(), name="loom-nats-connect")

    async def connected(self, timeout: float | None = None) -> Client:
        """The live connection, once there is one (TimeoutError after `timeout`)."""
        self.start()
        if timeout is None:
            await self._ready.wait()
        else:
            await asyncio.wait_for(self._ready.wait(), timeout)
        assert self._nc is not None
        return self._nc

    async def jetstream(self) -> JetStreamContext:
        await self.connected()
        assert self._js is not None
        return self._js

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _connect(self) -> None:
        async def on_error(error: Exception) -> None:
            # While the server is away every reconnect attempt fails: say so now and then.
            now = time.monotonic()
            if now - self._error_logged >= 30:
                self._error_logged = now
                log.warning("nats error", error=f"{type(error).__name__}: {error}")

        async def on_disconnected() -> None:
            if not self._closing:
                log.warning("nats disconnected")

        async def on_reconnected() -> None:
            log.info("nats reconnected")
            with contextlib.suppress(Exception):
                await self.ensure_streams()

        self._nc = await nats.connect(
            servers=list(self.settings.servers),
            name=self._name,
            max_reconnect_attempts=-1,  # keep trying: the store keeps the events meanwhile
            reconnect_time_wait=0.5,
            connect_timeout=2,
            ping_interval=10,
            max_outstanding_pings=2,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        self._js = self._nc.jetstream(timeout=5)
        while True:
            try:
                await self.ensure_streams()
                break
            except Exception as exc:
                log.warning("nats streams not declared yet", error=str(exc))
                await asyncio.sleep(1.0)
        self._ready.set()
        log.info("nats connected", servers=list(self.settings.servers), prefix=self.settings.prefix)

    async def ensure_streams(self) -> None:
        """Declare both streams (idempotent; a changed configuration is updated)."""
        assert self._js is not None
        s = self.settings
        configs = [
            StreamConfig(
                name=s.events_stream,
                subjects=[f"{s.prefix}.ev.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=s.duplicate_window,
                max_age=s.events_max_age,
            ),
            StreamConfig(
                name=s.work_stream,
                subjects=[f"{s.prefix}.work.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=s.duplicate_window,
                # At most one item per execution, held or waiting: queueing it again is
                # always safe, and two engines never hold the same execution.
                max_msgs_per_subject=1,
                discard=DiscardPolicy.NEW,
                discard_new_per_subject=True,
            ),
        ]
        for config in configs:
            try:
                await self._js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self._js.update_stream(config)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._ready.clear()
