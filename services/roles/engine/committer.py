"""Group commit: appends that arrive while a write is in progress share the next transaction.

One execution's run of pure elements is already one append; with many
executions in flight, their appends queue up behind the store's single writer.
Writing whatever has queued as one multi-stream transaction turns N commits
(N fsyncs) into one. A conflict in any stream fails the whole transaction, so
a failed group is retried one caller at a time to give each its own answer. A caller
may hand in several streams that must be written together (a parent and the children
it starts): they stay one unit, in one transaction, whatever happens to the group.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from domain.ports import Append, ConcurrencyError, EventStore

MAX_GROUP = 256


class GroupCommitter:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._queue: list[tuple[str, list[Append], asyncio.Future[list[int]]]] = []
        self._writing = False

    async def append(self, tenant: str, append: Append) -> list[int]:
        return await self.append_all(tenant, [append])

    async def append_all(self, tenant: str, appends: list[Append]) -> list[int]:
        """Append to every stream in one transaction; the positions of all their events."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._queue.append((tenant, appends, future))
        if not self._writing:
            self._writing = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                by_tenant: dict[str, list[tuple[list[Append], asyncio.Future[list[int]]]]] = (
                    defaultdict(list)
                )
                for tenant, appends, future in group:
                    by_tenant[tenant].append((appends, future))
                for tenant, items in by_tenant.items():
                    await self._write(tenant, items)
        finally:
            self._writing = False

    async def _write(
        self, tenant: str, items: list[tuple[list[Append], asyncio.Future[list[int]]]]
    ) -> None:
        every = [append for appends, _ in items for append in appends]
        streams = {append.stream_id for append in every}
        if len(items) > 1 and len(streams) == len(every):
            try:
                positions = await asyncio.to_thread(self._store.append, tenant, every)
            except ConcurrencyError:
                pass  # someone's stream moved: find out whose, one at a time
            except BaseException as exc:
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                return
            else:
                offset = 0
                for appends, future in items:
                    count = sum(len(append.events) for append in appends)
                    if not future.done():
                        future.set_result(positions[offset : offset + count])
                    offset += count
                return
        for appends, future in items:
            try:
                result = await asyncio.to_thread(self._store.append, tenant, appends)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
