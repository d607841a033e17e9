"""The WebSocket gateway fed by NATS: every seq exactly once, and nothing of another tenant."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from domain.ports import RecordedEvent
from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.nats_support import free_port
from tests.support import SECRET, SECRETS_KEY

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


@dataclass
class Served:
    loom: Loom
    address: str

    def socket_url(self, execution_id: str, tenant: str) -> str:
        token = mint_token(SECRET, tenant, "watcher")
        return f"ws://{self.address}/ws/executions/{execution_id}?token={token}"


@pytest.fixture
async def served(postgres_url: str, postgres_schema: str, nats_url: str) -> AsyncIterator[Served]:
    """Every role in one process over NATS (`loom serve all` with LOOM_NATS_URL)."""
    database = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"
    settings = Settings.from_env(
        {
            "LOOM_DATABASE_URL": database,
            "LOOM_NATS_URL": nats_url,
            "LOOM_JWT_SECRET": SECRET,
            "LOOM_SECRETS_KEY": SECRETS_KEY,
        }
    )
    loom = Loom(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(web_app(loom), host="127.0.0.1", port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    yield Served(loom, f"127.0.0.1:{port}")
    server.should_exit = True
    await asyncio.wait_for(task, 20)


async def read_socket(url: str, timeout: float = 30.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes, and the close code."""
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), connect(url, max_size=None) as ws:
        try:
            async for raw in ws:
                messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
    return messages, ws.close_code


def chain_after_a_delay(transforms: int, delay_s: float) -> dict[str, Any]:
    keys = ["start", "wait", *(f"t{i}" for i in range(transforms)), "done"]
    elements: list[dict[str, Any]] = [
        {"key": "start", "type": "trigger"},
        {"key": "wait", "type": "delay", "params": {"seconds": delay_s}},
        *(
            {"key": f"t{i}", "type": "transform", "params": {"output": {"v": "input.v + 1"}}}
            for i in range(transforms)
        ),
        {"key": "done", "type": "end"},
    ]
    return {
        "project": "Live",
        "app": "Gateway",
        "name": f"chain of {transforms}",
        "threads": [
            {
                "key": "main",
                "elements": elements,
                "connections": [{"source": a, "target": b} for a, b in itertools.pairwise(keys)],
            }
        ],
    }


def assert_contiguous(messages: list[dict[str, Any]], last_seq: int) -> None:
    snapshot, events = messages[0], messages[1:]
    assert snapshot["type"] == "snapshot"
    seqs = [m["seq"] for m in events]
    start = snapshot["status"]["position"] + 1
    assert seqs == list(range(start, last_seq + 1)), "every seq after the snapshot, once, in order"
    assert events[-1]["type"] == "ExecutionCompleted"


async def test_clients_see_every_seq_of_a_500_event_execution_exactly_once(
    served: Served,
) -> None:
    loom = served.loom
    # 8 + 2 * 246 = 500 events: the start, then, after the delay, the rest in one burst.
    saved = await loom.processes.save("acme", "alice", chain_after_a_delay(246, 1.5))
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"v": 0})
    url = served.socket_url(started.execution_id, "acme")

    early = asyncio.create_task(read_socket(url))
    await asyncio.sleep(0.5)
    later = asyncio.create_task(read_socket(url))
    results = await asyncio.gather(early, later)
    for messages, code in results:
        assert code == 1000
        assert messages[0]["status"]["status"] == "running"
        assert_contiguous(messages, 500)

    # After the end: a snapshot, and whatever the read model had not folded yet.
    messages, code = await read_socket(url)
    assert code == 1000
    if len(messages) > 1:
        assert_contiguous(messages, 500)
    else:
        assert messages[0]["status"]["position"] == 500


async def test_a_client_of_another_tenant_never_receives_anything_of_it(served: Served) -> None:
    loom = served.loom
    saved = await loom.processes.save("acme", "alice", chain_after_a_delay(20, 1.0))
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"v": 0})
    execution_id = started.execution_id

    leaked: list[RecordedEvent] = []
    stop = await loom.feed.watch(
        "beta", UUID(execution_id), lambda _tenant, events: leaked.extend(events)
    )
    try:
        owner = asyncio.create_task(read_socket(served.socket_url(execution_id, "acme")))
        for asked in (execution_id, "*", ">", "acme.>", "%2A", f"{execution_id}.>"):
            messages, code = await read_socket(served.socket_url(asked, "beta"), timeout=10)
            assert (messages, code) == ([], 4404), asked
        messages, code = await owner
        assert code == 1000
        assert_contiguous(messages, 8 + 2 * 20)
        await asyncio.sleep(0.2)
        assert leaked == []
    finally:
        await stop()


async def test_a_socket_without_a_valid_token_is_closed_4401(served: Served) -> None:
    url = f"ws://{served.address}/ws/executions/{UUID(int=1)}?token=nonsense"
    assert await read_socket(url, timeout=10) == ([], 4401)
