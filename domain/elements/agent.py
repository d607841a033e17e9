"""The `agent` element: asks one of the tenant's agents (an LLM) with a rendered prompt.

The element decides only the request it records (`agent_id`, `model`, the rendered
`prompt`); the engine's agent runner resolves the agent, builds the chat request
with `chat_request` and records what it sent next to the answer, so a replay reads
both back and never calls the LLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from domain.elements.base import ElementType, Retry, evaluate_or_fail
from domain.events import AgentSaved
from domain.expressions import Scope, Template

MAX_TIMEOUT_S = 3600.0


class AgentParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agent_id: str
    prompt: str
    model: str | None = None
    timeout_s: float | None = None
    retry: Retry | None = None

    def __post_init__(self) -> None:
        if not self.agent_id.strip():
            raise ValueError("agent_id must not be empty")
        if not self.prompt.strip():
            raise ValueError("prompt must not be empty")
        if self.model is not None and not self.model.strip():
            raise ValueError("model must not be empty when given")
        if self.timeout_s is not None and not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s must be above 0 and at most {MAX_TIMEOUT_S:g}")


class Agent(ElementType):
    name = "agent"
    description = (
        "Asks one of the tenant's agents (an LLM); output = {text, model, usage, "
        "agent_version, latency_ms, request}."
    )
    params_type = AgentParams
    side_effects = True

    def prepare(self, params: AgentParams) -> tuple[AgentParams, Template]:
        return params, Template(params.prompt, secrets=True)

    def effect(self, prepared: tuple[AgentParams, Template], scope: Scope) -> Any:
        params, template = prepared
        prompt = evaluate_or_fail(template.render, scope)
        return {
            "agent_id": params.agent_id,
            "model": params.model,
            "prompt": prompt if isinstance(prompt, str) else _json(prompt),  # Sealed is a str
        }


def _json(value: Any) -> str:
    # A lone `{{ x }}` keeps x's type: a structured value goes to the model as JSON, keys
    # sorted because CEL maps come out in an order that differs between processes, and
    # the prompt is recorded: a replay must render the very same string.
    return msgspec.json.encode(value, order="sorted").decode()


def chat_request(request: Mapping[str, Any], agent: AgentSaved) -> dict[str, Any]:
    """The chat-completions request for an element's recorded request and the agent it names.

    The agent's system prompt (if any) comes first, then the rendered prompt as the
    user's message; the element's `model` overrides the agent's default; the agent's
    temperature and max_tokens are sent only when set, so the server's defaults apply.
    """
    messages = []
    if agent.system_prompt:
        messages.append({"role": "system", "content": agent.system_prompt})
    messages.append({"role": "user", "content": str(request["prompt"])})
    chat: dict[str, Any] = {"model": request.get("model") or agent.model, "messages": messages}
    if agent.temperature is not None:
        chat["temperature"] = agent.temperature
    if agent.max_tokens is not None:
        chat["max_tokens"] = agent.max_tokens
    return chat
