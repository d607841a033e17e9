"""Process definitions as the engine needs them: loaded from the store, compiled per version."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from uuid import UUID

from domain.definition import Graph, compile_definition, parse_definition
from domain.ports import EventStore
from domain.process import Process


class UnknownProcess(LookupError):
    """No such process (or version) in this tenant."""


class DefinitionCatalog:
    def __init__(self, store: EventStore, capacity: int = 512) -> None:
        self._store = store
        self._graphs: OrderedDict[tuple[str, str, int], Graph] = OrderedDict()
        self._capacity = capacity

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
