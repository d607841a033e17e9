"""Reads that agree under load, against Loom as real processes: 20 clients each start
executions one after the other, wait on each until its status says `completed`, and
at once ask the list; it must list every one of them as completed (and none as
running). On SQLite and on PostgreSQL in one process, and with the roles apart on
PostgreSQL and NATS, where the list reads a read model another process writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.auth import mint_token
from tests.e2e.test_distributed import Cluster
from tests.nats_support import delete_streams, free_port, nats_server_url, unique_nats_url
from tests.support import SECRET, SECRETS_KEY

pytestmark = [pytest.mark.e2e]

CLIENTS = 20
EACH = 10
CHAIN = {
    "project": "Reads",
    "app": "E2E",
    "name": "double",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {"key": "double", "type": "transform", "params": {"expression": "input.n * 2"}},
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "double"},
                {"source": "double", "target": "done"},
            ],
        }
    ],
}


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("distributed", marks=[pytest.mark.postgres, pytest.mark.nats]),
    ]
)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The base URL of a Loom serving the API over one of the backends."""
    env = {
        "LOOM_SECRETS_KEY": SECRETS_KEY,
        "LOOM_JWT_SECRET": SECRET,
        "LOOM_HOST": "127.0.0.1",
        "LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/loom.db",
    }
    prefix = server = None
    if request.param != "sqlite":
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        env["LOOM_DATABASE_URL"] = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    if request.param == "distributed":
        server = nats_server_url()
        env["LOOM_NATS_URL"], prefix = unique_nats_url(server)
    cluster = Cluster(tmp_path, env)
    try:
        if request.param == "distributed":
            cluster.spawn("api", "api", free_port())
            cluster.spawn("projector", "projector")
            cluster.spawn("engine", "engine")
        else:
            cluster.spawn("api", "all", free_port())
        await cluster.healthy("api")
        yield cluster.url("api")
    finally:
        cluster.stop()
        if server is not None and prefix is not None:
            await delete_streams(server, prefix)


async def _client_story(
    http: httpx.AsyncClient, process_id: str, client: int
) -> list[tuple[str, int]]:
    """Start EACH executions in turn; after each, the list must already agree."""
    mine: list[str] = []
    lag: list[tuple[str, int]] = []
    for n in range(EACH):
        started = await http.post(
            "/api/v1/executions", json={"process_id": process_id, "input": {"n": n}}
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        async with asyncio.timeout(30):
            while True:
                status = await http.get(f"/api/v1/executions/{execution_id}/status")
                assert status.status_code == 200, status.text
                if status.json()["status"] == "completed":
                    break
                await asyncio.sleep(0.02)
        assert status.json()["output"] == {"done": n * 2}
        mine.append(execution_id)
        completed = await _listed(http, process_id, "completed")
        running = await _listed(http, process_id, "running")
        lag += [(i, client) for i in mine if i not in completed or i in running]
    return lag


async def _listed(http: httpx.AsyncClient, process_id: str, status: str) -> set[str]:
    page = await http.get(
        "/api/v1/executions", params={"process_id": process_id, "status": status, "limit": 500}
    )
    assert page.status_code == 200, page.text
    return {item["execution_id"] for item in page.json()["items"]}


async def test_under_20_clients_a_status_seen_completed_is_listed_completed_at_once(
    api: str,
) -> None:
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as http:
        saved = await http.post("/api/v1/processes", json=CHAIN)
        assert saved.status_code == 201, saved.text
        process_id = saved.json()["process_id"]
        stories = [_client_story(http, process_id, c) for c in range(CLIENTS)]
        lagging: list[Any] = [lag for story in await asyncio.gather(*stories) for lag in story]
        assert not lagging, f"{len(lagging)} times the list trailed a status: {lagging[:5]}"
        assert len(await _listed(http, process_id, "completed")) == CLIENTS * EACH
