"""The agent runner: resolves the tenant's agent, asks the LLM once, records what it sent."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from domain.events import AgentSaved
from domain.ports import EffectFailed
from services.roles.engine.agent_runner import AgentRunner


class Directory:
    """The tenant's agents, by (tenant, id): versions oldest first."""

    def __init__(self, agents: dict[tuple[str, str], list[AgentSaved]]) -> None:
        self.agents = agents

    async def saved(
        self, tenant: str, agent_id: str, version: int | None = None
    ) -> AgentSaved | None:
        versions = self.agents.get((tenant, agent_id), [])
        return versions[-1] if versions else None


class LLM:
    """Records each chat request; answers from a script (an EffectFailed is raised)."""

    def __init__(self, *answers: Any) -> None:
        self.calls: list[tuple[dict[str, Any], float | None]] = []
        self.answers = list(answers)

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        self.calls.append((request, timeout_s))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def saved(version: int, system_prompt: str) -> AgentSaved:
    return AgentSaved(
        at="2024-05-01T09:00:00.000000Z",
        actor="alice",
        version=version,
        name="Qualifier",
        system_prompt=system_prompt,
        model="gpt-base",
    )


AGENTS = Directory({("acme", "a-1"): [saved(1, "Old."), saved(2, "Qualify leads.")]})
ANSWER = {
    "text": "7/10",
    "model": "gpt-base-1",
    "usage": {"total_tokens": 9},
    "finish_reason": "stop",
}
REQUEST = {"tenant": "acme", "agent_id": "a-1", "model": None, "prompt": "Score the lead Bob"}


def ticking(*readings: float) -> Any:
    values = iter(readings)
    return lambda: next(values)


async def test_the_answer_records_the_agent_version_the_latency_and_the_request_as_sent():
    llm = LLM(ANSWER)
    runner = AgentRunner(AGENTS, llm, monotonic=ticking(10.0, 10.25))

    output = await runner.invoke(REQUEST, 30.0)

    sent = {
        "model": "gpt-base",
        "messages": [
            {"role": "system", "content": "Qualify leads."},
            {"role": "user", "content": "Score the lead Bob"},
        ],
    }
    assert llm.calls == [(sent, 30.0)]
    assert output == {
        **ANSWER,
        "agent_id": "a-1",
        "agent_version": 2,
        "latency_ms": 250,
        "request": sent,
    }


@pytest.mark.parametrize(("tenant", "agent_id"), [("globex", "a-1"), ("acme", "a-2")])
async def test_an_agent_the_tenant_does_not_have_fails_without_asking_the_llm(
    tenant: str, agent_id: str
):
    llm = LLM()
    runner = AgentRunner(AGENTS, llm)

    with pytest.raises(EffectFailed, match=f"agent {agent_id} does not exist in this tenant"):
        await runner.invoke({**REQUEST, "tenant": tenant, "agent_id": agent_id}, None)
    assert llm.calls == []


async def test_a_failed_call_keeps_its_error_and_logs_neither_prompt_nor_error_at_info():
    llm = LLM(EffectFailed("the LLM endpoint answered HTTP 400: bad 'Score the lead Bob'"))
    runner = AgentRunner(AGENTS, llm, monotonic=ticking(1.0, 2.0))

    with capture_logs() as logs, pytest.raises(EffectFailed, match="HTTP 400"):
        await runner.invoke(REQUEST, None)

    info = [line for line in logs if line["log_level"] == "info"]
    assert [line["event"] for line in info] == ["agent call failed"]
    assert info[0]["tenant_id"] == "acme" and info[0]["agent_version"] == 2
    assert "Score the lead Bob" not in repr(info) and "Qualify leads." not in repr(info)


async def test_an_answer_is_logged_with_its_numbers_only():
    runner = AgentRunner(AGENTS, LLM(ANSWER), monotonic=ticking(1.0, 1.5))

    with capture_logs() as logs:
        await runner.invoke(REQUEST, None)

    [line] = logs
    assert line["event"] == "agent answered"
    assert (line["latency_ms"], line["total_tokens"], line["model"]) == (500, 9, "gpt-base-1")
    assert "7/10" not in repr(line) and "Score the lead Bob" not in repr(line)
