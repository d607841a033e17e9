"""Running the side effects the orchestrator asked for, through their ports.

A request that uses secrets is recorded with `***` and slots (domain/secrets.py):
here, and only here, the values go in, just before the call, and come out of the
answer and of any error before either is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

from domain.ports import AgentInvoker, EffectFailed, HttpRequester, SecretValues
from domain.secrets import Slot, names, redact, redact_text, unseal

__all__ = ["EffectFailed", "Effects"]


class Effects:
    """Dispatches an element's recorded request to the port of its type, bounded by its timeout."""

    def __init__(
        self,
        http: HttpRequester,
        agents: AgentInvoker,
        secrets: SecretValues | None = None,
    ) -> None:
        self._http = http
        self._agents = agents
        self._secrets = secrets

    async def perform(
        self,
        tenant: str,
        kind: str,
        request: Any,
        timeout_s: float | None,
        slots: list[Slot] | None = None,
    ) -> Any:
        values: dict[str, str] = {}
        if slots:
            if self._secrets is None:
                raise EffectFailed("this engine has no access to secrets")
            try:
                values = await self._secrets.reveal(tenant, names(slots))
            except EffectFailed:
                raise
            except Exception as exc:  # the store away: this attempt fails, a retry may not
                raise EffectFailed(f"secrets could not be read: {exc}") from None
            request = unseal(request, slots, values)
        try:
            answer = await self._call(tenant, kind, request, timeout_s)
        except EffectFailed as exc:
            if values:
                raise EffectFailed(redact_text(str(exc), values.values())) from None
            raise
        return redact(answer, values.values()) if values else answer

    async def _call(self, tenant: str, kind: str, request: Any, timeout_s: float | None) -> Any:
        try:
            if kind == "http":
                call = self._http.request(request, timeout_s)
            elif kind == "agent":
                call = self._agents.invoke({**request, "tenant": tenant}, timeout_s)
            else:
                raise EffectFailed(f"no runner for element type {kind!r}")
            if timeout_s is None:
                return await call
            return await asyncio.wait_for(call, timeout_s)
        except TimeoutError:
            raise EffectFailed(f"timed out after {timeout_s} s") from None
        except EffectFailed:
            raise
        except Exception as exc:
            raise EffectFailed(f"{type(exc).__name__}: {exc}") from None
