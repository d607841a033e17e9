"""Per-tenant limits over HTTP: starts per second and executions in flight answer 429 with
`Retry-After`, name the limit, change nothing, and never touch another tenant."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.harness.api import ALICE, auth, create, finished, listed, start
from tests.harness.waits import until
from tests.support import SECRET, contract_example, with_delay

EXAMPLE = contract_example()

Client = AsyncTestClient[Any]
BOB = auth("globex", "bob")


class Clock:
    """The Loom's clock, moved by the test (it starts at the real time)."""

    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_client(database_url: str, clock: Clock) -> Callable[..., Any]:
    @asynccontextmanager
    async def open_(**env: str) -> AsyncIterator[Client]:
        settings = Settings.from_env(
            {"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET, **env}
        )
        app = web_app(Loom(settings, clock=clock))
        async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
            yield client

    return open_


async def post_start(
    client: Client, process_id: str, headers: dict[str, str] = ALICE, **extra: Any
) -> Any:
    body = {"process_id": process_id, "input": {"amount": 70}, **extra.pop("body", {})}
    return await client.post("/api/v1/executions", json=body, headers={**headers, **extra})


def refused_for(response: Any, limit: str) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    body: dict[str, Any] = response.json()
    assert limit in body["detail"] and body["limit"] == limit
    assert body["retry_after_s"] == int(retry_after)
    return body


async def test_a_tenant_past_its_starts_per_second_gets_429_and_another_tenant_does_not(
    open_client: Callable[..., Any], clock: Clock
) -> None:
    async with open_client(LOOM_TENANT_STARTS_PER_S="5") as client:
        ours, theirs = await create(client, EXAMPLE), await create(client, EXAMPLE, BOB)
        for _ in range(10):  # the burst: twice the rate
            await start(client, ours, {"amount": 70})
        await until(lambda: _listed_count(client, ALICE, 10), "the ten listed")
        before = await listed(client)

        refused = await post_start(client, ours)
        body = refused_for(refused, "LOOM_TENANT_STARTS_PER_S")
        assert "tenant acme" in body["detail"]
        assert (await post_start(client, theirs, BOB)).status_code == 202
        assert await listed(client) == before  # the refused start changed nothing

        clock.t += int(refused.headers["Retry-After"])
        assert (await post_start(client, ours)).status_code == 202


async def test_a_rerun_counts_as_a_start(open_client: Callable[..., Any], clock: Clock) -> None:
    async with open_client(LOOM_TENANT_STARTS_PER_S="1", LOOM_TENANT_STARTS_BURST="1") as client:
        process_id = await create(client, EXAMPLE)
        execution_id = await start(client, process_id, {"amount": 70})
        await finished(client, execution_id)
        url = f"/api/v1/executions/{execution_id}/rerun"
        refused = await client.post(url, json={"from": "score"}, headers=ALICE)
        refused_for(refused, "LOOM_TENANT_STARTS_PER_S")
        clock.t += 1
        assert (await client.post(url, json={"from": "score"}, headers=ALICE)).status_code == 202


async def test_an_idempotent_retry_is_answered_as_before_even_at_the_limit(
    open_client: Callable[..., Any],
) -> None:
    async with open_client(LOOM_TENANT_STARTS_PER_S="1", LOOM_TENANT_STARTS_BURST="1") as client:
        process_id = await create(client, EXAMPLE)
        first = await post_start(client, process_id, **{"Idempotency-Key": "k1"})
        assert first.status_code == 202, first.text
        again = await post_start(client, process_id, **{"Idempotency-Key": "k1"})
        assert again.status_code == 202, again.text
        assert again.json()["execution_id"] == first.json()["execution_id"]
        other_body = await post_start(
            client, process_id, body={"input": {"amount": 1}}, **{"Idempotency-Key": "k1"}
        )
        assert other_body.status_code == 409, other_body.text
        new_key = await post_start(client, process_id, **{"Idempotency-Key": "k2"})
        refused_for(new_key, "LOOM_TENANT_STARTS_PER_S")


async def test_a_tenant_at_its_running_limit_gets_429_until_one_ends(
    open_client: Callable[..., Any], clock: Clock
) -> None:
    async with open_client(LOOM_TENANT_MAX_RUNNING="2") as client:
        waits, theirs = await create(client, with_delay(3600)), await create(client, EXAMPLE, BOB)
        first = await start(client, waits)
        await start(client, waits)
        await until(lambda: _listed_count(client, ALICE, 2), "both listed")
        before = await listed(client)

        refused = await post_start(client, waits)
        body = refused_for(refused, "LOOM_TENANT_MAX_RUNNING")
        assert body["detail"].startswith("tenant acme has 2 executions running, the limit")
        quick = await post_start(client, await create(client, EXAMPLE))
        refused_for(quick, "LOOM_TENANT_MAX_RUNNING")  # even one that would end at once
        for _ in range(3):  # another tenant is not held up
            assert (await post_start(client, theirs, BOB)).status_code == 202
        assert await listed(client) == before

        cancelled = await client.post(f"/api/v1/executions/{first}/cancel", headers=ALICE)
        assert cancelled.status_code == 200, cancelled.text
        await until(
            lambda: _listed_count(client, ALICE, 1, status="cancelled"), "the cancel listed"
        )
        clock.t += max(3.0, math.ceil(int(refused.headers["Retry-After"])))
        assert (await post_start(client, waits)).status_code == 202
        refused_for(await post_start(client, waits), "LOOM_TENANT_MAX_RUNNING")


async def test_executions_that_end_at_once_never_fill_the_running_limit(
    open_client: Callable[..., Any],
) -> None:
    async with open_client(LOOM_TENANT_MAX_RUNNING="2") as client:
        process_id = await create(client, EXAMPLE)
        for _ in range(20):
            assert (await post_start(client, process_id)).status_code == 202


async def test_the_start_routes_document_the_429(open_client: Callable[..., Any]) -> None:
    async with open_client() as client:
        schema = (await client.get("/schema/openapi.json")).json()
        paths = schema["paths"]
        start_path = next(p for p in paths if p.rstrip("/") == "/api/v1/executions")
        assert "429" in paths[start_path]["post"]["responses"]
        assert "429" in paths["/api/v1/executions/{execution_id}/rerun"]["post"]["responses"]


async def _listed_count(client: Client, headers: dict[str, str], count: int, **params: Any) -> bool:
    return len(await listed(client, headers, **params)) == count
