"""Process definitions as the engine needs them: loaded from the store, compiled per version."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from uuid import UUID

from domain.definition import Graph, compile_definition, parse_definition
from domain.ports import EventStore
from domain.process import Process


class UnknownProcess(LookupError):
    """No such process (or version) in this tenant."""


class DefinitionCatalog:
    """Compiled graphs by (tenant, process, version), and each process's latest version.

    Versions never change once saved, so graphs are cached for good. Which version
    is the latest does change: a save through this process forgets it at once, and
    one made by another API process is seen within `latest_ttl_s`.
    """

    def __init__(self, store: EventStore, capacity: int = 512, latest_ttl_s: float = 1.0) -> None:
        self._store = store
        self._graphs: OrderedDict[tuple[str, str, int], Graph] = OrderedDict()
        self._capacity = capacity
        self._latest: OrderedDict[tuple[str, str], tuple[float, Process]] = OrderedDict()
        self._latest_ttl_s = latest_ttl_s

    async def latest(self, tenant: str, process_id: str, *, refresh: bool = False) -> Process:
        """The process with every version saved so far (UnknownProcess if none)."""
        key = (tenant, process_id)
        known = self._latest.get(key)
        if not refresh and known is not None and time.monotonic() - known[0] < self._latest_ttl_s:
            return known[1]
        process = await asyncio.to_thread(self.load, tenant, process_id)
        self._latest[key] = (time.monotonic(), process)
        self._latest.move_to_end(key)
        if len(self._latest) > self._capacity:
            self._latest.popitem(last=False)
        return process

    def forget(self, tenant: str, process_id: str) -> None:
        """A new version was saved here: the next `latest` reads it."""
        self._latest.pop((tenant, process_id), None)

    def load(self, tenant: str, process_id: str) -> Process:
        """The process aggregate, or UnknownProcess (blocking)."""
        try:
            stream = UUID(process_id)
        except ValueError:
            raise UnknownProcess(process_id) from None
        events = self._store.read(tenant, stream)
        if not events:
            raise UnknownProcess(process_id)
        return Process.rebuild(process_id, [r.event for r in events])

    def graph_of(self, tenant: str, process: Process, version: int) -> Graph:
        key = (tenant, process.id, version)
        graph = self._graphs.get(key)
        if graph is None:
            if version not in process.versions:
                raise UnknownProcess(f"{process.id} version {version}")
            graph = compile_definition(parse_definition(process.versions[version].definition))
            self._graphs[key] = graph
            if len(self._graphs) > self._capacity:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph

    async def graph(self, tenant: str, process_id: str, version: int) -> Graph:
        graph = self._graphs.get((tenant, process_id, version))
        if graph is not None:
            return graph
        process = await asyncio.to_thread(self.load, tenant, process_id)
        return self.graph_of(tenant, process, version)
