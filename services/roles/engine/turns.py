"""Whose turn it is: executions with pure elements ready, taken tenant by tenant.

A long run of pure elements pauses after a slice (domain/execution.py); the engine
goes on with paused executions one slice at a time, handing the event loop back
between slices, so a request waits for one slice at most. The tenants take turns:
a tenant with a thousand executions waiting gets one slice, then the next tenant
gets one, so its backlog cannot push another tenant's work behind it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque


class TenantTurns:
    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[str]] = OrderedDict()
        self._queued: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._queued

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, tenant: str, execution_id: str) -> None:
        """Queue an execution for a turn (once: queuing it again changes nothing)."""
        key = (tenant, execution_id)
        if key in self._queued:
            return
        self._queued.add(key)
        queue = self._waiting.get(tenant)
        if queue is None:
            queue = self._waiting[tenant] = deque()
        queue.append(execution_id)
        self._wake.set()

    async def next(self) -> tuple[str, str]:
        """The next execution to go on with: the first tenant in line's oldest."""
        while not self._waiting:
            self._wake.clear()
            await self._wake.wait()
        tenant, queue = next(iter(self._waiting.items()))
        execution_id = queue.popleft()
        if queue:
            self._waiting.move_to_end(tenant)  # the tenant goes to the back of the line
        else:
            del self._waiting[tenant]
        self._queued.discard((tenant, execution_id))
        return tenant, execution_id
