"""The composition root: the one place that builds adapters and wires them together."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from domain.ports import EventStore
from infra.bus.inprocess import InProcessBus
from infra.http_client import HttpxRequester
from infra.llm import FakeAgentInvoker
from infra.readmodel.status_store import PostgresStatusStore, SQLiteStatusStore
from infra.settings import Settings
from infra.store import open_event_store
from services.agents import AgentService
from services.api.app import create_app
from services.api.routes import ROUTES
from services.catalog import DefinitionCatalog
from services.engine.effects import Effects
from services.engine.engine import Engine
from services.executions import ExecutionService
from services.gateway.websocket import ExecutionSocket
from services.processes import ProcessService
from services.projector.projector import Projector


class SystemClock:
    def now(self) -> float:
        return time.time()


class Loom:
    """Everything one process of Loom runs, built from settings (nothing connects at import)."""

    def __init__(self, settings: Settings, *, clock: Any = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store: EventStore = open_event_store(settings.database_url)
        self.statuses = _status_store(settings.database_url, self.store)
        self.bus = InProcessBus()
        self.catalog = DefinitionCatalog(self.store)
        self.http = HttpxRequester()
        self.engine = Engine(
            self.store,
            self.catalog,
            self.bus,
            Effects(self.http, FakeAgentInvoker()),
            self.clock,
        )
        self.projector = Projector(self.store, self.statuses)
        self.bus.subscribe(self.projector.deliver)
        self.processes = ProcessService(self.store, self.catalog, self.clock)
        self.executions = ExecutionService(self.store, self.catalog, self.engine, self.statuses)
        self.agents = AgentService(self.store, self.clock)

    async def start(self) -> None:
        """Catch the read model up with the store, then resume what was left running."""
        tenants = await asyncio.to_thread(self.store.tenants)
        for tenant in tenants:
            await asyncio.to_thread(self.projector.catch_up, tenant)
        self.projector.open()
        self.engine.open()
        running = []
        for tenant in tenants:
            ids = await asyncio.to_thread(self.statuses.running, tenant)
            running += [(tenant, execution_id) for execution_id in ids]
        await self.engine.resume(running)

    async def stop(self) -> None:
        await self.engine.close()
        await self.projector.settled()
        await self.projector.close()
        await self.http.close()
        self.statuses.close()
        self.store.close()


def _status_store(database_url: str, store: Any) -> Any:
    if database_url.startswith("sqlite:"):
        # A file of its own: the read model is rebuildable, and sharing the event
        # store's file would make the projector and the engine wait on one write lock.
        events = Path(database_url.removeprefix("sqlite:///").split("?")[0])
        events.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStatusStore(str(events.with_name(events.stem + "-read" + events.suffix)))
    return PostgresStatusStore(store.pool, store.schema)


def web_app(loom: Loom) -> Litestar:
    """The HTTP and WebSocket face of a Loom, started and stopped with the app."""
    from services.studio import studio_router

    def provide(value: Any) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    socket = ExecutionSocket(loom.executions, loom.bus, loom.store)
    return create_app(
        loom.settings,
        route_handlers=[*ROUTES, socket.handler(), studio_router()],
        on_startup=[loom.start],
        on_shutdown=[loom.stop],
        dependencies={
            "processes": provide(loom.processes),
            "executions": provide(loom.executions),
            "agents": provide(loom.agents),
        },
    )
