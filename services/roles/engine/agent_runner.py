"""The `agent` element's runner: the tenant's agent, the chat request, the LLM, the record.

The element records `{agent_id, model, prompt}` before it runs. Each attempt, the
runner resolves the agent as it stands then (its latest version), builds the chat
request, asks the LLM and answers with everything a replay or an audit needs:
the text, the model that answered, token usage, the agent version, the latency and
the request exactly as sent. That answer goes into `NodeCompleted`, so nothing
is ever asked twice for an attempt that completed.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from domain.elements.agent import chat_request
from domain.events import AgentSaved
from domain.ports import AgentInvoker, EffectFailed, SecretValues
from domain.secrets import redact, redact_text


def _log() -> Any:
    # Looked up per use, so a logging configured after import (tests, `loom serve`) applies.
    return structlog.get_logger("loom.agents")


class AgentDirectory(Protocol):
    async def saved(
        self, tenant: str, agent_id: str, version: int | None = None
    ) -> AgentSaved | None: ...


# An agent's own provider: its endpoint (None: the server's) and its key (None: none).
Provider = Callable[[str | None, str | None], AgentInvoker]
_MAX_PROVIDERS = 256


class AgentRunner:
    """An AgentInvoker for the engine: takes an element's recorded request plus `tenant`.

    An agent that names its own provider (`base_url`, `api_key_secret`) is asked
    through a client made for that endpoint and key, once, and reused; the key is
    read from the tenant's secrets at each call, so a replaced secret applies at once.
    """

    def __init__(
        self,
        agents: AgentDirectory,
        llm: AgentInvoker,
        *,
        secrets: SecretValues | None = None,
        provider: Provider | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agents = agents
        self._llm = llm
        self._secrets = secrets
        self._provider = provider
        self._providers: OrderedDict[tuple[str | None, str], AgentInvoker] = OrderedDict()
        self._monotonic = monotonic

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        tenant, agent_id = request["tenant"], request["agent_id"]
        agent = await self._agents.saved(tenant, agent_id)
        if agent is None:
            raise EffectFailed(f"agent {agent_id} does not exist in this tenant")
        llm, key = await self._llm_of(tenant, agent)
        try:
            answer = await self._ask(llm, request, agent, timeout_s)
        except EffectFailed as exc:
            raise EffectFailed(redact_text(str(exc), [key] if key else [])) from None
        return redact(answer, [key]) if key else answer

    async def _llm_of(self, tenant: str, agent: AgentSaved) -> tuple[AgentInvoker, str | None]:
        if agent.base_url is None and agent.api_key_secret is None:
            return self._llm, None
        if self._provider is None or self._secrets is None:
            raise EffectFailed("this engine cannot call an agent's own provider")
        key = None
        if agent.api_key_secret is not None:
            name = agent.api_key_secret
            key = (await self._secrets.reveal(tenant, [name]))[name]
        # Keyed by a digest: the cache must not be one more place that holds the key.
        cache_key = (agent.base_url, hashlib.sha256((key or "").encode()).hexdigest())
        llm = self._providers.get(cache_key)
        if llm is None:
            llm = self._provider(agent.base_url, key)
            self._providers[cache_key] = llm
            while len(self._providers) > _MAX_PROVIDERS:
                _, old = self._providers.popitem(last=False)
                await _close(old)
        else:
            self._providers.move_to_end(cache_key)
        return llm, key

    async def _ask(
        self,
        llm: AgentInvoker,
        request: dict[str, Any],
        agent: AgentSaved,
        timeout_s: float | None,
    ) -> dict[str, Any]:
        tenant, agent_id = request["tenant"], request["agent_id"]
        chat = chat_request(request, agent)
        # Never the prompt or the answer here: they are the tenant's data, kept in its events.
        where = {"tenant_id": tenant, "agent_id": agent_id, "agent_version": agent.version}
        started = self._monotonic()
        try:
            answer = await llm.invoke(chat, timeout_s)
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
        for llm in [self._llm, *self._providers.values()]:
            await _close(llm)
        self._providers.clear()


async def _close(llm: AgentInvoker) -> None:
    close = getattr(llm, "close", None)
    if close is not None:
        await close()
