"""Effects being performed: one task per call, keyed by (tenant, execution, element, attempt).

The call is a task of its own, apart from the task that records its answer, so
that ending an execution can stop its calls without stopping the recording of an
answer that already came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

# (tenant, execution id, element, attempt)
Call = tuple[str, str, str, int]


class CallsInFlight:
    def __init__(self) -> None:
        self._calls: dict[Call, asyncio.Task[Any]] = {}

    def __contains__(self, call: Call) -> bool:
        return call in self._calls

    def start(self, call: Call, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._calls[call] = task
        return task

    def answered(self, call: Call) -> bool:
        """Whether the call came back (or ended), its answer not yet recorded."""
        task = self._calls.get(call)
        return task is not None and task.done()

    def done(self, call: Call) -> None:
        self._calls.pop(call, None)

    def of(self, tenant: str, execution_id: str) -> bool:
        """Whether a call of this execution is in flight here."""
        return any(call[:2] == (tenant, execution_id) for call in self._calls)

    def stop(self, tenant: str, execution_id: str) -> None:
        """Stop the execution's calls (one already answered is not: its answer is discarded)."""
        for call, task in list(self._calls.items()):
            if call[:2] == (tenant, execution_id):
                task.cancel()

    def tasks(self) -> list[asyncio.Task[Any]]:
        return list(self._calls.values())
