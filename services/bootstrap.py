"""The composition root: the one place that builds adapters and wires them together.

Without `LOOM_NATS_URL` a Loom is the embedded all-in-one (`make run`): one
process, the in-process bus, engine, projector and gateway fed by it. With it, a
Loom runs the roles it is given over NATS JetStream (any number of processes of
each, on one PostgreSQL):

- api: REST and Studio; records commands (a start runs the first pure elements
  in the same transaction) and relays what it commits;
- engine: takes work items, performs effects, fires timers; relays too;
- projector: folds every event from a durable consumer into the read model;
- gateway: the WebSocket, fed by a subscription to one execution's subject.

`all` with NATS runs every role in one process, over NATS all the same.

Longer than our other modules on purpose: it is the one place that knows every
adapter and which role gets which, and splitting it would scatter that wiring.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog
from litestar import Litestar
from litestar.di import Provide

from domain.events import ProcessArchived, ProcessSaved
from domain.limits import set_result_limit
from domain.ports import EventFeed, EventStore, RecordedEvent, RelayState
from infra.auth import data_directory
from infra.bus.inprocess import InProcessBus
from infra.bus.nats import (
    EventConsumer,
    JetStreamPublisher,
    NatsClient,
    NatsEventFeed,
    NatsSettings,
    WorkQueue,
)
from infra.bus.relay_state import PostgresRelayState, SQLiteRelayState
from infra.http_client import HttpxRequester, guarded_client
from infra.llm import FakeAgentInvoker, OpenAIAgentInvoker
from infra.logging import mask
from infra.readmodel.catalog_store import PostgresCatalogStore, SQLiteCatalogStore
from infra.readmodel.hook_index import PostgresHookIndex, SQLiteHookIndex
from infra.readmodel.inbox_store import PostgresInboxStore, SQLiteInboxStore
from infra.readmodel.schedule_index import PostgresScheduleIndex, SQLiteScheduleIndex
from infra.readmodel.status_store import PostgresStatusStore, SQLiteStatusStore
from infra.secret_keys import GENERATED_KEY_FILE, MasterKey, SecretsKeyError, generated_master_key
from infra.settings import Settings
from infra.store import open_event_store
from infra.store.postgres import parse_postgres_url
from projections.catalog import CatalogStore
from projections.hooks import HookIndex
from projections.inbox import InboxStore
from projections.schedules import ScheduleIndex
from projections.status import StatusStore
from services.roles.api.app import create_app
from services.roles.api.routes import ROUTES
from services.roles.engine.agent_runner import AgentRunner
from services.roles.engine.effects import Effects
from services.roles.engine.engine import Engine
from services.roles.engine.schedules import Scheduler
from services.roles.engine.worker import Worker, requeue_running
from services.roles.gateway.websocket import ExecutionSocket
from services.roles.projector.catalog import CatalogProjector
from services.roles.projector.projector import Projector
from services.roles.relay.relay import Relay
from services.usecases.agents import AgentService
from services.usecases.catalog import DefinitionCatalog
from services.usecases.executions import ExecutionService
from services.usecases.processes import ProcessService
from services.usecases.read_positions import TrackedPosition
from services.usecases.schedules import ScheduleService
from services.usecases.secrets import SecretService
from services.usecases.signals import SignalService
from services.usecases.tenant_limits import TenantLimits
from services.usecases.webhooks import WebhookService

ROLES = ("api", "engine", "projector", "gateway")
ReadModel = TypeVar("ReadModel")
# How long a stopping Loom waits for the projector to save what it has folded.
SAVE_ON_STOP_S = 10.0

log = structlog.get_logger("loom")


class SystemClock:
    def now(self) -> float:
        return time.time()


class Loom:
    """Everything one process of Loom runs, built from settings (nothing connects at import).

    `roles` (a subset of ROLES) only matters with `settings.nats_url`; the embedded
    mode always runs every role.
    """

    def __init__(
        self, settings: Settings, *, clock: Any = None, roles: Iterable[str] = ROLES
    ) -> None:
        self.settings = settings
        self.roles = frozenset(roles)
        self.distributed = settings.nats_url is not None
        if not self.roles or not self.roles <= set(ROLES):
            raise ValueError(f"roles must be among {', '.join(ROLES)}, got {sorted(self.roles)}")
        if not self.distributed and self.roles != set(ROLES):
            raise ValueError("running roles apart needs NATS: set LOOM_NATS_URL")
        self.clock = clock or SystemClock()
        master = master_key(settings)  # before anything opens: a missing key stops here
        set_result_limit(settings.max_result_bytes)
        self.store: EventStore = open_event_store(settings.database_url)
        self.statuses = _status_store(settings.database_url, self.store)
        self.bus = InProcessBus()
        self.catalog = DefinitionCatalog(self.store)
        self.http = HttpxRequester(settings.http_allow)
        self.secrets = SecretService(self.store, self.clock, master, on_reveal=mask)
        self.agent_runner = AgentRunner(
            AgentService(self.store, self.clock),
            _llm(settings),
            secrets=self.secrets,
            provider=_provider(settings),
        )
        self.effects = Effects(self.http, self.agent_runner, self.secrets)
        # Distributed, this engine only records the api's commands (start, cancel):
        # effects and timers are the engine role's, and its cache would go stale.
        commands_only: dict[str, Any] = {"cache_size": 0, "run_effects": False, "run_timers": False}
        self.engine = Engine(
            self.store,
            self.catalog,
            self.bus,
            self.effects,
            self.clock,
            **(commands_only if self.distributed else {}),
        )
        self.inbox = _inbox_store(settings.database_url, self.store)
        self.projector = Projector(self.store, self.statuses, signals=self.inbox)
        self.lists: CatalogStore = _catalog_store(settings.database_url, self.store)
        self.hooks: HookIndex = _hook_index(settings.database_url, self.store)
        self.schedule_index: ScheduleIndex = _schedule_index(settings.database_url, self.store)
        self.catalog_projector = CatalogProjector(
            self.store, self.lists, self.hooks, self.schedule_index
        )
        # In one process the projectors see every commit as it happens: status reads
        # may come from memory and a list waits for the save before it. Apart, another
        # process's projector is the fresher.
        live = None if self.distributed else self.projector.current
        settled = None if self.distributed else self.catalog_projector.settled
        self.processes = ProcessService(
            self.store,
            self.catalog,
            self.clock,
            self.lists,
            self.bus.publish,
            settled,
            self.hooks,
            schedules=self.schedule_index,
        )
        self.limits = TenantLimits(
            self.clock,
            self.statuses.running,
            max_running=settings.tenant_max_running,
            starts_per_s=settings.tenant_starts_per_s,
            burst=settings.tenant_starts_burst,
        )
        if self.distributed:
            self.nats = NatsClient(NatsSettings.from_url(self.settings.nats_url or ""))
        # A start-and-wait watches the execution's events: apart, the engines commit them.
        waits: EventFeed = NatsEventFeed(self.nats) if self.distributed else self.bus
        # A list waits for the read model to hold what a status may have shown.
        caught_up = (
            TrackedPosition(self.store, self.statuses) if self.distributed else self.projector.saved
        )
        self.executions = ExecutionService(
            self.store,
            self.catalog,
            self.engine,
            self.statuses,
            live,
            self.limits,
            waits,
            caught_up,
        )
        self.webhooks = WebhookService(self.processes, self.executions, self.secrets)
        # Ticks are fired by engines only: apart, each engine role fires every tick, and
        # the tick's derived execution id starts it once.
        self.scheduler: Scheduler | None = None
        if not self.distributed or "engine" in self.roles:
            schedules = ScheduleService(self.schedule_index, self.catalog, self.executions)
            self.scheduler = Scheduler(schedules, self.clock)
        self.agents = AgentService(self.store, self.clock)
        self.signals = SignalService(self.engine, self.inbox)
        self.feed: EventFeed = self.bus
        self._tasks: list[asyncio.Task[Any]] = []
        self._resumed = asyncio.Event()
        if self.distributed:
            self._wire_nats()
        else:
            self.bus.subscribe(self.projector.deliver)
            self.bus.subscribe(self.catalog_projector.deliver)
            self.bus.subscribe(self._schedules_saved)

    def _schedules_saved(self, tenant: str, events: Sequence[RecordedEvent]) -> None:
        """A save or an archive here: the scheduler reads the schedules it changed now."""
        if self.scheduler is not None and isinstance(
            events[0].event, ProcessSaved | ProcessArchived
        ):
            self.scheduler.changed()

    def _wire_nats(self) -> None:
        assert self.settings.nats_url is not None
        self.relay: Relay | None = None
        self.worker: Worker | None = None
        self.worker_engine: Engine | None = None
        if self.roles & {"api", "engine"}:
            state = _relay_state(self.settings.database_url, self.store)
            self.relay = Relay(self.store, state, JetStreamPublisher(self.nats))
            self.bus.subscribe(self.relay.wake)
        if "engine" in self.roles:
            self.worker_engine = Engine(
                self.store, self.catalog, self.bus, self.effects, self.clock, run_timers=False
            )
            self.worker = Worker(self.worker_engine, WorkQueue(self.nats), self.bus, self.clock)
        if "gateway" in self.roles:
            self.feed = NatsEventFeed(self.nats)

    async def start(self) -> None:
        """Catch the read model up with the store, then resume what was left running.

        Distributed: start this process's roles (the engines' work queue resumes runs).
        """
        # A deployment started with the wrong LOOM_SECRETS_KEY says so now, not at a call.
        await asyncio.to_thread(self.secrets.check_master_key)
        if self.distributed:
            await self._start_roles()
            return
        tenants = await asyncio.to_thread(self.store.tenants)
        await self._catch_up(tenants)
        self.projector.open()
        self.catalog_projector.open()
        self.engine.open()
        if self.scheduler is not None:
            await self.scheduler.open()
        # Resumed in the background: the server listens (and answers cancel) first, and
        # what was left running goes through the same budgets as new work.
        self._tasks.append(asyncio.create_task(self._resume(tenants), name="loom-resume"))

    async def _catch_up(self, tenants: list[str]) -> None:
        for tenant in tenants:
            await asyncio.to_thread(self.projector.catch_up, tenant)
            await asyncio.to_thread(self.catalog_projector.catch_up, tenant)

    async def _fold(self, batches: Any) -> None:
        """One consumer feeds both read models; it acks once both have saved."""
        await self.projector.fold_batches(batches)
        await self.catalog_projector.fold_batches(batches)

    async def _resume(self, tenants: list[str]) -> None:
        try:
            running = []
            for tenant in tenants:
                ids = await asyncio.to_thread(self.statuses.running, tenant)
                running += [(tenant, execution_id) for execution_id in ids]
            await self.engine.resume(running)
        except Exception:
            log.exception("executions left running were not resumed")
        finally:
            self._resumed.set()

    async def resumed(self) -> None:
        """Wait until what was left running at start has been taken up again."""
        await self._resumed.wait()

    async def _start_roles(self) -> None:
        self.nats.start()  # connects in the background: the api stores on while NATS is away
        if "projector" in self.roles:
            # The store is the record: fold what it holds first, then follow the bus.
            await self._catch_up(await asyncio.to_thread(self.store.tenants))
            consumer = EventConsumer(self.nats)
            self._tasks.append(asyncio.create_task(consumer.run(self._fold)))
        self.engine.open()
        if self.relay is not None:
            self.relay.open()
        if self.worker is not None and self.worker_engine is not None:
            self.worker_engine.open()
            self.worker.open()
            self._tasks.append(asyncio.create_task(self._requeue()))
        if self.scheduler is not None:
            await self.scheduler.open()

    async def _requeue(self) -> None:
        await self.nats.connected()
        try:
            await requeue_running(self.store, self.statuses, JetStreamPublisher(self.nats))
        except Exception as exc:  # the relay queues new executions anyway
            log.warning("running executions not queued", error=f"{type(exc).__name__}: {exc}")

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        if self.distributed:
            await self._stop_roles()
        else:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.close()
        try:
            await asyncio.wait_for(self.projector.settled(), SAVE_ON_STOP_S)
        except TimeoutError:
            # The store is the record: the next start folds what this one could not save.
            log.warning("read model not saved before stopping", waited_s=SAVE_ON_STOP_S)
        await self.projector.close()
        await self.catalog_projector.close()
        await self.http.close()
        await self.agent_runner.close()
        self.statuses.close()
        self.lists.close()
        self.hooks.close()
        self.schedule_index.close()
        self.inbox.close()
        self.store.close()

    async def _stop_roles(self) -> None:
        if self.worker is not None and self.worker_engine is not None:
            await self.worker.close()
            await self.worker_engine.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.relay is not None:
            await self.relay.close()
        await self.nats.close()


def master_key(settings: Settings) -> Callable[[], MasterKey]:
    """The master key of tenants' secrets: LOOM_SECRETS_KEY, or the embedded default's file.

    Raises SecretsKeyError at once for a malformed key, or for none over NATS (every
    role of a deployment must hold the same key; a file per host would not be).
    The key file is made only when secrets are first used.
    """
    if settings.secrets_key is not None:
        key = MasterKey.from_base64(settings.secrets_key)
        return lambda: key
    if settings.nats_url is not None:
        raise SecretsKeyError(
            "LOOM_SECRETS_KEY must be set when Loom runs over NATS: every role needs the "
            "same key (32 random bytes in base64, e.g. `openssl rand -base64 32`)"
        )
    directory = data_directory(settings.database_url)

    @functools.cache
    def generated() -> MasterKey:
        log.warning(
            "LOOM_SECRETS_KEY is not set: secrets are encrypted with the key generated in "
            f"{directory / GENERATED_KEY_FILE}; set LOOM_SECRETS_KEY in production"
        )
        return generated_master_key(directory)

    return generated


def _llm(settings: Settings) -> FakeAgentInvoker | OpenAIAgentInvoker:
    # The fake answers offline and deterministically, so `make run` needs no key;
    # a base URL alone is enough for local servers (Ollama, vLLM) that want none.
    if settings.llm_api_key is None and settings.llm_base_url is None:
        return FakeAgentInvoker()
    return OpenAIAgentInvoker(settings.llm_base_url, settings.llm_api_key)


def _provider(settings: Settings) -> Callable[[str | None, str | None], OpenAIAgentInvoker]:
    """A client for an agent's own provider: the endpoint a tenant named is reached only
    through the outbound guard, as an http element's is; without one, the server's."""

    def make(base_url: str | None, api_key: str | None) -> OpenAIAgentInvoker:
        if base_url is None:
            return OpenAIAgentInvoker(settings.llm_base_url, api_key)
        return OpenAIAgentInvoker(
            base_url, api_key, http_client=guarded_client(settings.http_allow)
        )

    return make


def open_store(settings: Settings, *, create: bool = True) -> EventStore:
    """The event store alone, for the command-line tools.

    With `create=False` (tools that only read) a SQLite file that does not exist
    is refused with FileNotFoundError rather than created empty.
    """
    url = settings.database_url
    if not create and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            raise FileNotFoundError(f"no event store at {path}")
    return open_event_store(url)


def open_status_store(settings: Settings, store: EventStore) -> StatusStore:
    """The status read model beside `store` (for `loom import`, which folds what it loads)."""
    return _status_store(settings.database_url, store)


def open_inbox_store(settings: Settings, store: EventStore) -> InboxStore:
    """The inbox of waiting signals beside `store` (for `loom import`)."""
    return _inbox_store(settings.database_url, store)


def open_catalog_store(settings: Settings, store: EventStore) -> CatalogStore:
    """The process and project lists beside `store` (for `loom import` and rebuilds)."""
    return _catalog_store(settings.database_url, store)


def _catalog_store(database_url: str, store: Any) -> CatalogStore:
    return _read_model(database_url, store, SQLiteCatalogStore, PostgresCatalogStore)


def _inbox_store(database_url: str, store: Any) -> InboxStore:
    return _read_model(database_url, store, SQLiteInboxStore, PostgresInboxStore)


def _status_store(database_url: str, store: Any) -> StatusStore:
    return _read_model(database_url, store, SQLiteStatusStore, PostgresStatusStore)


def open_hook_index(settings: Settings, store: EventStore) -> HookIndex:
    """The webhook index beside `store` (for `loom import`, whose hooks must answer)."""
    return _hook_index(settings.database_url, store)


def _hook_index(database_url: str, store: Any) -> HookIndex:
    return _read_model(database_url, store, SQLiteHookIndex, PostgresHookIndex)


def _schedule_index(database_url: str, store: Any) -> ScheduleIndex:
    return _read_model(database_url, store, SQLiteScheduleIndex, PostgresScheduleIndex)


def _read_model(
    database_url: str,
    store: Any,
    on_sqlite: Callable[[str], ReadModel],
    on_postgres: Callable[[Any, str], ReadModel],
) -> ReadModel:
    """A read model in one file beside the SQLite events (rebuildable, and apart from the
    event store's file so the projector and the engine never wait on one write lock),
    or in the event store's PostgreSQL pool and schema."""
    if database_url.startswith("sqlite:"):
        return on_sqlite(_beside_events(database_url, "read"))
    return on_postgres(store.pool, store.schema)


def _relay_state(database_url: str, store: Any) -> RelayState:
    if database_url.startswith("sqlite:"):
        return SQLiteRelayState(_beside_events(database_url, "relay"))
    params, _ = parse_postgres_url(database_url)
    return PostgresRelayState(store.pool, store.schema, params)


def _beside_events(database_url: str, suffix: str) -> str:
    events = Path(database_url.removeprefix("sqlite:///").split("?")[0])
    events.parent.mkdir(parents=True, exist_ok=True)
    return str(events.with_name(f"{events.stem}-{suffix}{events.suffix}"))


def web_app(loom: Loom) -> Litestar:
    """The HTTP and WebSocket face of a Loom, started and stopped with the app."""
    from services.roles.studio import studio_router

    def provide(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    handlers: list[Any] = []
    if "api" in loom.roles:
        handlers += [*ROUTES, studio_router()]
    if "gateway" in loom.roles:
        handlers.append(ExecutionSocket(loom.executions, loom.feed, loom.store).handler())
    return create_app(
        loom.settings,
        route_handlers=handlers,
        on_startup=[loom.start],
        on_shutdown=[loom.stop],
        dependencies={
            "processes": provide(loom.processes),
            "executions": provide(loom.executions),
            "agents": provide(loom.agents),
            "secrets": provide(loom.secrets),
            "webhooks": provide(loom.webhooks),
            "signals": provide(loom.signals),
        },
    )
