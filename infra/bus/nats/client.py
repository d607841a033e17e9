"""NATS JetStream adapters: the relay's publisher, the projector's and engines' consumers, the
gateway's live feed.

Subjects (decided here and nowhere else; a tenant id never holds '.', '*' or '>'):

- `<prefix>.ev.<tenant>.<stream_id>`: every committed event, in the stream `<prefix>_events`
  (limits retention), `Nats-Msg-Id` = `<tenant>:<stream_id>:<seq>`;
- `<prefix>.work.<tenant>.<execution_id>`: an execution that needs an engine, in the stream
  `<prefix>_work` (work-queue retention, one durable pull consumer shared by every engine);
- `<prefix>.relay.wake`: core NATS, "this tenant has new events", from writers to the relay.

`LOOM_NATS_URL` is `nats://host:4222[,nats://other:4222][?prefix=P&ack_wait=S]`: the prefix
keeps deployments (and tests) sharing one server apart; `ack_wait` is how long an engine may
go silent before its work items go to another engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import msgspec
import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from domain.events import AnyEvent
from domain.ports import BusHandler, RecordedEvent
from infra.store.naming import validate_tenant

log = structlog.get_logger("loom.nats")

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MSG_ID = "Nats-Msg-Id"
_DAY_S = 24 * 3600.0
_ONE_PER_SUBJECT = 10077  # JetStream: "maximum messages per subject exceeded"


class NatsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where NATS is and how Loom names and times its streams there."""

    servers: tuple[str, ...]
    prefix: str = "loom"
    ack_wait: float = 30.0
    duplicate_window: float = 120.0
    events_max_age: float = _DAY_S  # transport only: the store keeps everything

    @classmethod
    def from_url(cls, url: str) -> NatsSettings:
        """`nats://host:port[,nats://host2:port][?prefix=P&ack_wait=S]`."""
        base, _, query = url.partition("?")
        servers = tuple(s.strip() for s in base.split(",") if s.strip())
        if not servers or not all(s.startswith(("nats://", "tls://")) for s in servers):
            raise ValueError(f"not a nats:// URL: {url!r}")
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        prefix = params.get("prefix", "loom")
        if _PREFIX.fullmatch(prefix) is None:
            raise ValueError(f"invalid NATS prefix {prefix!r}: must match {_PREFIX.pattern}")
        ack_wait = float(params.get("ack_wait", 30.0))
        if not 0.5 <= ack_wait <= 3600:
            raise ValueError(f"ack_wait must be between 0.5 and 3600 s, got {ack_wait}")
        return cls(servers=servers, prefix=prefix, ack_wait=ack_wait)

    @property
    def events_stream(self) -> str:
        return f"{self.prefix}_events"

    @property
    def work_stream(self) -> str:
        return f"{self.prefix}_work"


# --- subjects and ids -------------------------------------------------------------------


def event_subject(prefix: str, tenant: str, stream_id: UUID) -> str:
    """The subject of one stream's (execution's) events."""
    return f"{prefix}.ev.{validate_tenant(tenant)}.{stream_id}"


def work_subject(prefix: str, tenant: str, execution_id: UUID) -> str:
    """The subject of an execution's work item."""
    return f"{prefix}.work.{validate_tenant(tenant)}.{execution_id}"


def wake_subject(prefix: str) -> str:
    return f"{prefix}.relay.wake"


def event_msg_id(tenant: str, recorded: RecordedEvent) -> str:
    """The event's identity, so that JetStream drops a re-publish."""
    return f"{tenant}:{recorded.stream_id}:{recorded.seq}"


def work_msg_id(tenant: str, execution_id: UUID) -> str:
    return f"{tenant}:{execution_id}:work"


def _subject_tail(subject: str) -> tuple[str, UUID]:
    """(tenant, id) from `<prefix>.<kind>.<tenant>.<id>`."""
    _, _, tenant, stream = subject.rsplit(".", 3)
    return validate_tenant(tenant), UUID(stream)


# --- the wire format --------------------------------------------------------------------


class Envelope(msgspec.Struct, frozen=True):
    """One committed event as it travels: where it sits in the store, and the event."""

    tenant: str
    stream_id: UUID
    seq: int
    position: int
    event: AnyEvent

    def recorded(self) -> RecordedEvent:
        return RecordedEvent(self.stream_id, self.seq, self.event, self.position)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_event(tenant: str, recorded: RecordedEvent) -> bytes:
    return _encoder.encode(
        Envelope(tenant, recorded.stream_id, recorded.seq, recorded.position, recorded.event)  # type: ignore[arg-type]
    )


def decode_event(payload: bytes) -> Envelope:
    envelope: Envelope = _decoder.decode(payload)
    return envelope


# --- the connection ---------------------------------------------------------------------


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


# --- the relay's side -------------------------------------------------------------------


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
                        headers={_MSG_ID: event_msg_id(tenant, r)},
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

    async def publish_work(self, tenant: str, execution_ids: Sequence[UUID]) -> None:
        """Queue each execution for an engine, unless an item for it is queued or held already."""
        if not execution_ids:
            return
        if not self._client.is_connected:
            raise PublishFailed("not connected to NATS")
        js = await self._client.jetstream()

        async def queue(execution_id: UUID) -> None:
            # Not publish_async: nats-py never settles its future on an API error.
            try:
                await js.publish(
                    work_subject(self.prefix, tenant, execution_id),
                    b"",
                    timeout=self._ack_timeout,
                    headers={_MSG_ID: work_msg_id(tenant, execution_id)},
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code != _ONE_PER_SUBJECT:
                    raise

        try:
            await asyncio.gather(*(queue(e) for e in execution_ids))
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


# --- the gateway's side -----------------------------------------------------------------


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


# --- the projector's side ---------------------------------------------------------------

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
        pulls = _pull(self._client, s.events_stream, config, self._batch)
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


# --- the engines' side ------------------------------------------------------------------


class WorkItem:
    """An execution an engine holds until it is done with it (or until ack_wait lapses)."""

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.tenant, self.execution_id = _subject_tail(msg.subject)
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

    async def items(self, room: Callable[[], Awaitable[int]]) -> Any:
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
        async with contextlib.aclosing(_pull(self._client, s.work_stream, config, room)) as pulls:
            async for msgs in pulls:
                for msg in msgs:
                    try:
                        item = WorkItem(msg)
                    except ValueError:
                        log.error("malformed work item dropped", subject=msg.subject)
                        await msg.term()
                        continue
                    yield item


async def _pull(
    client: NatsClient,
    stream: str,
    config: ConsumerConfig,
    batch: int | Callable[[], Awaitable[int]],
) -> Any:
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
