"""The `agent` element's runner: the tenant's agent, the chat request, the LLM, the record.

The element records `{agent_id, model, prompt}` before it runs. Each attempt, the
runner resolves the agent as it stands then (its latest version), builds the chat
request, asks the LLM and answers with everything a replay or an audit needs:
the text, the model that answered, token usage, the agent version, the latency and
the request exactly as sent. That answer goes into `NodeCompleted`, so nothing
is ever asked twice for an attempt that completed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from domain.elements.agent import chat_request
from domain.events import AgentSaved
from domain.ports import AgentInvoker, EffectFailed


def _log() -> Any:
    # Looked up per use, so a logging configured after import (tests, `loom serve`) applies.
    return structlog.get_logger("loom.agents")


class AgentDirectory(Protocol):
    async def saved(
        self, tenant: str, agent_id: str, version: int | None = None
    ) -> AgentSaved | None: ...


class AgentRunner:
    """An AgentInvoker for the engine: takes an element's recorded request plus `tenant`."""

    def __init__(
        self,
        agents: AgentDirectory,
        llm: AgentInvoker,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agents = agents
        self._llm = llm
        self._monotonic = monotonic

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        tenant, agent_id = request["tenant"], request["agent_id"]
        agent = await self._agents.saved(tenant, agent_id)
        if agent is None:
            raise EffectFailed(f"agent {agent_id} does not exist in this tenant")
        chat = chat_request(request, agent)
        # Never the prompt or the answer here: they are the tenant's data, kept in its events.
        where = {"tenant_id": tenant, "agent_id": agent_id, "agent_version": agent.version}
        started = self._monotonic()
        try:
            answer = await self._llm.invoke(chat, timeout_s)
        except EffectFailed as exc:
            # The error text is in NodeFailed; some servers quote the request in theirs.
            _log().info("agent call failed", **where, model=chat["model"])
            _log().debug("agent call failed", **where, error=str(exc))
            raise
        latency_ms = round((self._monotonic() - started) * 1000)
        _log().info(
            "agent answered",
            **where,
            model=answer["model"],
            latency_ms=latency_ms,
            total_tokens=answer["usage"].get("total_tokens"),
        )
        return {
            **answer,
            "agent_id": agent_id,
            "agent_version": agent.version,
            "latency_ms": latency_ms,
            "request": chat,
        }

    async def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if close is not None:
            await close()
