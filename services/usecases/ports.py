"""What the use cases need of the parts that run: the port the engine serves them through."""

from __future__ import annotations

from typing import Any, Protocol

from domain.events import ExecutionStarted
from domain.execution import Execution


class UnknownExecution(LookupError):
    """No execution of that id exists for the tenant."""


class ExecutionCommands(Protocol):
    """Records commands on executions (`services/roles/engine/engine.py` is the one).

    `start` raises ConcurrencyError when the id exists already (an idempotent
    retry); `cancel` raises UnknownExecution, or InvalidCommand when it ended.
    """

    def now(self) -> str: ...

    async def start(
        self, tenant: str, execution_id: str, started: ExecutionStarted
    ) -> Execution: ...

    async def cancel(self, tenant: str, execution_id: str, actor: str) -> Execution: ...

    async def load(self, tenant: str, execution_id: str) -> Execution | None: ...

    async def signal(
        self,
        tenant: str,
        execution_id: str,
        name: str,
        data: Any,
        actor: str,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Execution:
        """Raises UnknownExecution, or InvalidCommand when it ended or the key was reused."""
        ...
