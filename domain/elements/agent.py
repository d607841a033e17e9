from __future__ import annotations

from typing import Any

import msgspec

from domain.elements.base import ElementType, Retry, evaluate_or_fail
from domain.expressions import Scope, Template


class AgentParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    agent_id: str
    prompt: str
    model: str | None = None
    timeout_s: float | None = None
    retry: Retry | None = None


class Agent(ElementType):
    name = "agent"
    description = "Asks one of the tenant's agents (an LLM); output = {text, model, usage}."
    params_type = AgentParams
    side_effects = True

    def prepare(self, params: AgentParams) -> tuple[AgentParams, Template]:
        return params, Template(params.prompt)

    def effect(self, prepared: tuple[AgentParams, Template], scope: Scope) -> Any:
        params, template = prepared
        prompt = evaluate_or_fail(template.render, scope)
        return {
            "agent_id": params.agent_id,
            "model": params.model,
            "prompt": prompt if isinstance(prompt, str) else str(prompt),
        }
