"""Running the side effects the orchestrator asked for, through their ports."""

from __future__ import annotations

import asyncio
from typing import Any

from domain.ports import AgentInvoker, EffectFailed, HttpRequester

__all__ = ["EffectFailed", "Effects"]


class Effects:
    """Dispatches an element's recorded request to the port of its type, bounded by its timeout."""

    def __init__(self, http: HttpRequester, agents: AgentInvoker) -> None:
        self._http = http
        self._agents = agents

    async def perform(self, tenant: str, kind: str, request: Any, timeout_s: float | None) -> Any:
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
