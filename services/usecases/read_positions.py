"""Read-your-writes for the lists read from a read model apart from this process.

Status reads fold the store's tail past the saved document, so they are as new as
the store itself. A list is as new as the read model; before it answers, it waits
until the read model has folded the tenant's store position of the moment it was
asked: whatever any endpoint showed before the list was asked is in the list.
In one process the projector says so itself (`Projector.saved`); apart, this
asks the store's head and the read model's tracked position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from domain.ports import EventStore
from projections.status import StatusStore
from services.usecases.blocking import blocking

# (tenant, timeout) → whether the read model has everything the store had when asked.
ReadModelCaughtUp = Callable[[str, float], Awaitable[bool]]

FIRST_POLL_S = 0.005
MAX_POLL_S = 0.05


class TrackedPosition:
    """The read model has caught up once its tracked position reaches the store's head."""

    def __init__(self, store: EventStore, statuses: StatusStore) -> None:
        self._store = store
        self._statuses = statuses

    async def __call__(self, tenant: str, timeout: float) -> bool:
        head = await blocking(self._store.max_position, tenant)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = FIRST_POLL_S
        while await blocking(self._statuses.tracking, tenant) < head:
            if loop.time() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_POLL_S)
        return True
