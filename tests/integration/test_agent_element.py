"""The `agent` element through the real engine, the real openai client and a fake LLM server.

The server below speaks the chat-completions API on loopback; the tests script
what it answers (429, 500, a slow answer, a malformed body) and read back what it
received, so the request Loom sends is checked byte for byte as the server saw it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
import structlog
from litestar.testing import AsyncTestClient

from infra.logging import configure_logging
from infra.settings import Settings
from infra.store.naming import events_table
from services.bootstrap import Loom, web_app
from services.usecases.agents import AgentSpec
from services.usecases.errors import Invalid
from tests.harness.api import auth
from tests.harness.looms import open_loom, settings
from tests.harness.looms import sqlite_url as harness_sqlite_url
from tests.harness.replays import replayed
from tests.harness.waits import until_finished

API_KEY = "sk-loom-test-0123456789abcdef"


# --- a chat-completions server on loopback ------------------------------------------


class FakeLLM:
    """Answers POST /v1/chat/completions: scripted replies first, then an echo of the prompt."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: list[tuple[int, Any, float]] = []  # (status, body, seconds to stall)
        self.stop_stalling = threading.Event()
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                llm.calls.append(
                    {"path": self.path, "auth": self.headers.get("authorization"), "body": body}
                )
                status, reply, stall = llm.script.pop(0) if llm.script else (200, None, 0)
                llm.stop_stalling.wait(stall)
                raw = reply if isinstance(reply, bytes) else json.dumps(reply or _echo(body))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(raw if isinstance(raw, bytes) else raw.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def then(self, status: int, body: Any = None, stall: float = 0.0) -> FakeLLM:
        self.script.append((status, body, stall))
        return self


def _echo(request: dict[str, Any]) -> dict[str, Any]:
    prompt = request["messages"][-1]["content"]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": request["model"] + "-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {prompt}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.stop_stalling.set()
    fake.server.shutdown()
    fake.server.server_close()


# --- Loom pointed at it ---------------------------------------------------------------


def _settings(database_url: str, base_url: str) -> Settings:
    return settings(database_url, LOOM_LLM_BASE_URL=base_url, LOOM_LLM_API_KEY=API_KEY)


async def _open(database_url: str, base_url: str) -> Loom:
    return await open_loom(database_url, LOOM_LLM_BASE_URL=base_url, LOOM_LLM_API_KEY=API_KEY)


async def _close(loom: Loom) -> None:
    await loom.stop()
    await loom.agent_runner.close()  # idempotent; Loom.stop may close it too


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return harness_sqlite_url(tmp_path)


@pytest.fixture
async def loom(sqlite_url: str, llm: FakeLLM) -> AsyncIterator[Loom]:
    loom = await _open(sqlite_url, llm.base_url)
    yield loom
    await _close(loom)


async def _agent(loom: Loom, tenant: str = "acme", **fields: Any) -> str:
    spec = AgentSpec(
        **{"name": "Qualifier", "system_prompt": "You qualify sales leads.", "model": "gpt-base"}
        | fields
    )
    return (await loom.agents.save(tenant, "alice", spec)).agent_id


def _process(agent_id: str, **params: Any) -> dict[str, Any]:
    ask = {"agent_id": agent_id, "prompt": "Qualify {{ input.name }} ({{ input.amount }} EUR)"}
    return {
        "project": "Sales",
        "app": "Leads",
        "name": "Qualify",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {"key": "ask", "type": "agent", "params": ask | params},
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "ask"},
                    {"source": "ask", "target": "done"},
                ],
            }
        ],
    }


LEAD = {"name": "Bob", "amount": 120}


async def _run(loom: Loom, agent_id: str, tenant: str = "acme", **params: Any) -> dict[str, Any]:
    saved = await loom.processes.save(tenant, "alice", _process(agent_id, **params))
    started = await loom.executions.start(tenant, "alice", saved["process_id"], None, LEAD)
    return await until_finished(loom, started.execution_id, tenant)


async def _failures(loom: Loom, execution_id: str) -> list[dict[str, Any]]:
    events = await loom.executions.events("acme", execution_id)
    return [e.data for e in events if e.type == "NodeFailed"]


# --- what is sent, what is recorded ----------------------------------------------------


async def test_the_system_prompt_the_rendered_prompt_and_the_model_override_arrive_as_sent(
    database_url: str, llm: FakeLLM
) -> None:
    loom = await _open(database_url, llm.base_url)
    try:
        agent_id = await _agent(loom, temperature=0.2, max_tokens=64)
        status = await _run(loom, agent_id, model="gpt-override")
    finally:
        await _close(loom)

    sent = {
        "model": "gpt-override",
        "messages": [
            {"role": "system", "content": "You qualify sales leads."},
            {"role": "user", "content": "Qualify Bob (120 EUR)"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert llm.calls == [
        {"path": "/v1/chat/completions", "auth": f"Bearer {API_KEY}", "body": sent}
    ]
    assert status["status"] == "completed"
    answer = status["output"]["done"]
    assert answer["text"] == "echo: Qualify Bob (120 EUR)"
    assert answer["model"] == "gpt-override-2024"
    assert answer["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert (answer["agent_id"], answer["agent_version"]) == (agent_id, 1)
    assert answer["request"] == sent
    assert isinstance(answer["latency_ms"], int) and answer["latency_ms"] >= 0


async def test_without_an_override_the_agents_latest_version_and_model_are_used(
    loom: Loom, llm: FakeLLM
) -> None:
    agent_id = await _agent(loom)
    await loom.agents.save(
        "acme",
        "bob",
        AgentSpec(name="Qualifier", system_prompt="Be terse.", model="gpt-newer"),
        agent_id,
    )
    status = await _run(loom, agent_id)

    assert status["status"] == "completed"
    assert llm.calls[0]["body"] == {
        "model": "gpt-newer",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Qualify Bob (120 EUR)"},
        ],
    }
    assert status["output"]["done"]["agent_version"] == 2


async def test_a_finished_execution_never_asks_the_llm_again(sqlite_url: str, llm: FakeLLM) -> None:
    loom = await _open(sqlite_url, llm.base_url)
    agent_id = await _agent(loom)
    status = await _run(loom, agent_id)
    execution_id = status["execution_id"]
    assert len(llm.calls) == 1

    report = await replayed(loom, execution_id)
    await asyncio.to_thread(loom.projector.rebuild, "acme")
    rebuilt = await loom.executions.status("acme", execution_id)
    await _close(loom)
    revived = await _open(sqlite_url, llm.base_url)  # a restart resumes what is running
    try:
        after_restart = await revived.executions.status("acme", execution_id)
    finally:
        await _close(revived)

    assert report.deterministic
    assert rebuilt.output == after_restart.output == status["output"]
    assert len(llm.calls) == 1


# --- failures and retries ------------------------------------------------------------------


async def test_a_429_is_retried_per_the_elements_policy_and_then_succeeds(
    loom: Loom, llm: FakeLLM
) -> None:
    llm.then(429, {"error": {"message": "Rate limit reached", "type": "requests"}})
    agent_id = await _agent(loom)
    status = await _run(loom, agent_id, retry={"max_attempts": 3, "initial_interval_s": 0.05})

    assert status["status"] == "completed"
    assert status["nodes"]["ask"]["attempts"] == 2
    assert len(llm.calls) == 2
    [failure] = await _failures(loom, status["execution_id"])
    assert failure["error"] == "rate limited by the LLM endpoint (HTTP 429): Rate limit reached"
    assert failure["retry_at"] is not None


async def test_a_500_until_attempts_run_out_fails_the_execution_with_that_error(
    loom: Loom, llm: FakeLLM
) -> None:
    for _ in range(3):
        llm.then(500, {"error": {"message": "The server had an error"}})
    agent_id = await _agent(loom)
    status = await _run(loom, agent_id, retry={"max_attempts": 3, "initial_interval_s": 0.02})

    error = "the LLM endpoint answered HTTP 500: The server had an error"
    assert status["status"] == "failed"
    assert status["error"] == error
    assert status["nodes"]["ask"]["attempts"] == 3
    assert len(llm.calls) == 3
    failures = await _failures(loom, status["execution_id"])
    assert [f["attempt"] for f in failures] == [1, 2, 3]
    assert failures[-1]["retry_at"] is None


async def test_an_answer_slower_than_the_timeout_fails_the_attempt(
    loom: Loom, llm: FakeLLM
) -> None:
    llm.then(200, None, stall=5.0)
    agent_id = await _agent(loom)
    status = await _run(loom, agent_id, timeout_s=0.3)

    assert status["status"] == "failed"
    assert status["error"] == "timed out after 0.3 s"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(b"<html>bad gateway</html>", "JSON is malformed", id="not-json"),
        pytest.param({"id": "x", "object": "chat.completion"}, "`choices`", id="no-choices"),
        pytest.param({"choices": []}, "no choices", id="empty-choices"),
        pytest.param(
            {"choices": [{"message": {"role": "assistant"}}]}, "no content", id="no-content"
        ),
    ],
)
async def test_a_malformed_answer_fails_the_attempt_with_a_clear_error(
    loom: Loom, llm: FakeLLM, body: Any, why: str
) -> None:
    llm.then(200, body)
    agent_id = await _agent(loom)
    status = await _run(loom, agent_id)

    assert status["status"] == "failed"
    assert status["error"].startswith("malformed answer from the LLM endpoint: ")
    assert why in status["error"]


async def test_an_endpoint_that_refuses_connections_fails_the_attempt(sqlite_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loom = await _open(sqlite_url, f"http://127.0.0.1:{port}/v1")
    try:
        status = await _run(loom, await _agent(loom))
    finally:
        await _close(loom)

    assert status["status"] == "failed"
    assert status["error"].startswith(f"could not reach the LLM endpoint http://127.0.0.1:{port}")


async def test_a_refused_key_echoed_by_the_server_is_not_recorded(loom: Loom, llm: FakeLLM) -> None:
    llm.then(401, {"error": {"message": f"Incorrect API key provided: {API_KEY}"}})
    status = await _run(loom, await _agent(loom))

    assert status["error"] == "the LLM endpoint answered HTTP 401: Incorrect API key provided: ***"
    events = await loom.executions.events("acme", status["execution_id"])
    assert API_KEY not in msgspec.json.encode(events).decode()


# --- agents belong to their tenant ------------------------------------------------------------


async def test_an_element_cannot_name_another_tenants_agent(loom: Loom, llm: FakeLLM) -> None:
    theirs = await _agent(loom, tenant="globex")

    with pytest.raises(Invalid) as refused:
        await loom.processes.save("acme", "alice", _process(theirs))

    assert refused.value.key == "ask"
    assert theirs in refused.value.detail
    assert await loom.processes.list("acme") == []
    assert llm.calls == []


async def test_the_api_answers_422_naming_the_element_for_an_unknown_agent(
    sqlite_url: str, llm: FakeLLM
) -> None:
    acme, globex = auth("acme", "alice"), auth("globex", "bob")
    agent = {"name": "Qualifier", "system_prompt": "Qualify.", "model": "m"}
    # The app starts and stops this Loom on the test client's own loop.
    async with AsyncTestClient(web_app(Loom(_settings(sqlite_url, llm.base_url)))) as client:
        theirs = (await client.post("/api/v1/agents", json=agent, headers=globex)).json()
        mine = (await client.post("/api/v1/agents", json=agent, headers=acme)).json()
        foreign = await client.post(
            "/api/v1/processes", json=_process(theirs["agent_id"]), headers=acme
        )
        unknown = await client.post("/api/v1/processes", json=_process("nope"), headers=acme)
        accepted = await client.post(
            "/api/v1/processes", json=_process(mine["agent_id"]), headers=acme
        )
        listed = (await client.get("/api/v1/processes", headers=acme)).json()

    assert (foreign.status_code, foreign.json()["key"]) == (422, "ask")
    assert theirs["agent_id"] in foreign.json()["detail"]
    assert (unknown.status_code, unknown.json()["key"]) == (422, "ask")
    assert accepted.status_code == 201
    assert [p["process_id"] for p in listed] == [accepted.json()["process_id"]]


async def test_an_agent_gone_at_run_time_fails_the_node_without_calling_the_llm(
    loom: Loom, llm: FakeLLM, sqlite_url: str
) -> None:
    agent_id = await _agent(loom)
    saved = await loom.processes.save("acme", "alice", _process(agent_id))
    # There is no delete yet: erase the agent's stream as an operator would.
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            f"DELETE FROM {events_table('acme')} WHERE originator_id = ?", (UUID(agent_id).hex,)
        )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, LEAD)
    status = await until_finished(loom, started.execution_id)

    assert status["status"] == "failed"
    assert status["error"] == f"agent {agent_id} does not exist in this tenant"
    assert llm.calls == []


# --- logs ---------------------------------------------------------------------------------------


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


async def test_info_logs_hold_neither_the_api_key_nor_the_prompt(
    json_logs: None, loom: Loom, llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    llm.then(500, {"error": {"message": "The server had an error"}})
    agent_id = await _agent(loom, system_prompt="SECRET-SYSTEM-PROMPT")
    status = await _run(loom, agent_id, retry={"max_attempts": 2, "initial_interval_s": 0.02})
    assert status["status"] == "completed"

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    text = json.dumps(lines)
    assert any(line.get("event") == "agent answered" for line in lines)
    assert any(line.get("event") == "agent call failed" for line in lines)
    for secret in (API_KEY, "SECRET-SYSTEM-PROMPT", "Qualify Bob", "echo:"):
        assert secret not in text
