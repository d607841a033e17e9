"""The `agent` element: its params, the request it records, the chat request built from it."""

from __future__ import annotations

from typing import Any

import pytest

from domain.elements import ELEMENT_TYPES
from domain.elements.agent import chat_request
from domain.events import AgentSaved
from domain.expressions import Scope
from infra.llm import FakeAgentInvoker

AGENT = ELEMENT_TYPES["agent"]


def agent(**fields: Any) -> AgentSaved:
    defaults: dict[str, Any] = {
        "at": "2024-05-01T09:00:00.000000Z",
        "actor": "alice",
        "version": 3,
        "name": "Qualifier",
        "system_prompt": "You qualify leads.",
        "model": "gpt-base",
    }
    return AgentSaved(**(defaults | fields))


def recorded(prompt: str, input_: Any, **params: Any) -> dict[str, Any]:
    parsed = AGENT.parse({"agent_id": "a-1", "prompt": prompt, **params})
    return AGENT.effect(AGENT.prepare(parsed), Scope(input_, input_, {}))


def test_the_recorded_request_holds_the_agent_the_model_and_the_rendered_prompt():
    request = recorded("Score {{ input.name }}", {"name": "bob"}, model="gpt-x")

    assert request == {"agent_id": "a-1", "model": "gpt-x", "prompt": "Score bob"}


def test_a_structured_prompt_goes_to_the_model_as_json_with_its_keys_in_a_stable_order():
    request = recorded("{{ input }}", {"name": "bob", "n": [1, 2], "a": {"z": 1, "b": 2}})

    assert request["prompt"] == '{"a":{"b":2,"z":1},"n":[1,2],"name":"bob"}'


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"agent_id": " ", "prompt": "hi"}, id="blank-agent"),
        pytest.param({"agent_id": "a-1", "prompt": ""}, id="blank-prompt"),
        pytest.param({"agent_id": "a-1", "prompt": "hi", "model": ""}, id="blank-model"),
        pytest.param({"agent_id": "a-1", "prompt": "hi", "timeout_s": 0}, id="zero-timeout"),
        pytest.param({"agent_id": "a-1", "prompt": "hi", "tools": []}, id="unknown-param"),
    ],
)
def test_params_that_cannot_work_are_refused(params: dict[str, Any]):
    with pytest.raises(ValueError):
        AGENT.parse(params)


def test_the_chat_request_puts_the_system_prompt_first_and_the_elements_model_wins():
    chat = chat_request(
        {"agent_id": "a-1", "model": "gpt-override", "prompt": "Score bob"},
        agent(temperature=0.3, max_tokens=100),
    )

    assert chat == {
        "model": "gpt-override",
        "messages": [
            {"role": "system", "content": "You qualify leads."},
            {"role": "user", "content": "Score bob"},
        ],
        "temperature": 0.3,
        "max_tokens": 100,
    }


def test_without_a_model_or_a_system_prompt_the_agents_defaults_and_the_servers_apply():
    chat = chat_request({"agent_id": "a-1", "model": None, "prompt": "hi"}, agent(system_prompt=""))

    assert chat == {"model": "gpt-base", "messages": [{"role": "user", "content": "hi"}]}


async def test_the_fake_llm_answers_the_same_request_the_same_way():
    fake = FakeAgentInvoker()
    chat = {
        "model": "m",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}],
    }

    first, again = await fake.invoke(chat, None), await fake.invoke(chat, 1.0)

    assert first == again
    assert first["text"] == "[fake m] a b"
    assert first["usage"]["total_tokens"] == 6
