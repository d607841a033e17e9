"""Signals over REST, on SQLite and PostgreSQL: an execution waits, durably, for a
person or another system, and takes the oldest signal of its name.

Time is a clock the tests move: a signal's timeout is a durable timer that fires
when the clock passes it, whatever the wall time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import AsyncTestClient

from domain.clock import parse_iso
from infra.auth import mint_token
from infra.readmodel.inbox_store import SQLiteInboxStore
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.cli import main
from services.tools.audit import timeline
from tests.support import SECRET, definition, edge, el

T0 = "2024-05-01T09:00:00.000000Z"
Client = AsyncTestClient[Any]


def auth(tenant: str = "acme", sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, tenant, sub)}"}


ALICE, BOB = auth(), auth(sub="bob")
SCHEMA = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"type": "boolean"}, "note": {"type": "string"}},
}


def approval(before: list[dict[str, Any]] | None = None, **params: Any) -> dict[str, Any]:
    """start → [before…] → approve (signal "approval") → done; a timeout goes to `late`."""
    chain = ["start", *(e["key"] for e in before or []), "approve"]
    return definition(
        (
            [
                el("start", "trigger"),
                *(before or []),
                el("approve", "signal", name="approval", schema=SCHEMA, **params),
                el("done", "end"),
                el("late", "end"),
            ],
            [
                *(edge(a, b) for a, b in itertools.pairwise(chain)),
                edge("approve", "done"),
                edge("approve", "late", "error"),
            ],
        ),
        project="Sales",
        app="Deals",
        name="Approve",
    )


class Clock:
    def __init__(self) -> None:
        self.t = parse_iso(T0)

    def now(self) -> float:
        return self.t


class Running:
    """A Loom on the test's store, its HTTP client, and the clock it reads."""

    def __init__(self, loom: Loom, client: Client, clock: Clock) -> None:
        self.loom, self.client, self.clock = loom, client, clock

    async def advance(self, seconds: float) -> None:
        self.clock.t += seconds
        self.loom.engine.wake_timers()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_loom(database_url: str, clock: Clock) -> Callable[[], Any]:
    @asynccontextmanager
    async def open_() -> AsyncIterator[Running]:
        settings = Settings.from_env({"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET})
        loom = Loom(settings, clock=clock)
        async with AsyncTestClient(app=web_app(loom), raise_server_exceptions=False) as client:
            yield Running(loom, client, clock)

    return open_


@pytest.fixture
async def running(open_loom: Callable[[], Any]) -> AsyncIterator[Running]:
    async with open_loom() as running:
        yield running


async def create(client: Client, body: dict[str, Any]) -> str:
    response = await client.post("/api/v1/processes", json=body, headers=ALICE)
    assert response.status_code == 201, response.text
    return str(response.json()["process_id"])


async def start(client: Client, process_id: str, input: Any = None) -> str:
    body = {"process_id": process_id, "input": input}
    response = await client.post("/api/v1/executions", json=body, headers=ALICE)
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def status(client: Client, execution_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/executions/{execution_id}/status", headers=ALICE)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never: {what}")


async def until_status(client: Client, execution_id: str, wanted: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal seen
        seen = await status(client, execution_id)
        return seen["status"] == wanted

    await until(reached, f"execution {execution_id} {wanted}")
    return seen


async def until_waiting(client: Client, execution_id: str, element: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def waiting() -> bool:
        nonlocal seen
        seen = await status(client, execution_id)
        return seen["nodes"].get(element, {}).get("state") == "waiting"

    await until(waiting, f"{element} waiting")
    return seen


async def send(
    client: Client,
    execution_id: str,
    data: Any,
    name: str = "approval",
    headers: dict[str, str] = BOB,
) -> Any:
    return await client.post(
        f"/api/v1/executions/{execution_id}/signals/{name}", json={"data": data}, headers=headers
    )


async def events(client: Client, execution_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)
    assert response.status_code == 200, response.text
    return list(response.json())


# --- the wait and the signal ------------------------------------------------------------


async def test_a_signal_sent_to_a_waiting_execution_completes_it_with_who_sent_what(
    running: Running,
) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    waiting = await until_waiting(client, execution_id, "approve")
    assert waiting["status"] == "running"

    response = await send(client, execution_id, {"ok": True, "note": "fine"})

    assert response.status_code == 202, response.text
    assert response.json() == {
        "execution_id": execution_id,
        "name": "approval",
        "status": "completed",
    }
    done = await until_status(client, execution_id, "completed")
    output = done["output"]["done"]
    assert output["data"] == {"ok": True, "note": "fine"}
    assert output["by"] == "bob"
    assert done["nodes"]["approve"]["state"] == "completed"


async def test_a_signal_sent_before_the_element_is_reached_is_taken_when_it_is(
    running: Running,
) -> None:
    client = running.client
    pid = await create(client, approval([el("pause", "delay", seconds=60)]))
    execution_id = await start(client, pid)

    early = await send(client, execution_id, {"ok": False})
    assert early.status_code == 202, early.text
    assert early.json()["status"] == "running"
    await running.advance(60)

    done = await until_status(client, execution_id, "completed")
    assert done["output"]["done"]["data"] == {"ok": False}
    types = [e["type"] for e in await events(client, execution_id)]
    assert types.index("SignalReceived") < types.index("NodeWaiting")


async def test_data_that_does_not_fit_the_schema_is_422_naming_the_path_and_records_nothing(
    running: Running,
) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    await until_waiting(client, execution_id, "approve")
    before = await events(client, execution_id)

    wrong_type = await send(client, execution_id, {"ok": "yes"})
    missing = await send(client, execution_id, {"note": "no ok"})

    assert wrong_type.status_code == 422, wrong_type.text
    assert wrong_type.json()["key"] == "approve"
    assert "$.ok" in wrong_type.json()["detail"]
    assert "'yes' is not of type 'boolean'" in wrong_type.json()["detail"]
    assert missing.status_code == 422
    assert "'ok' is a required property" in missing.json()["detail"]
    assert await events(client, execution_id) == before
    assert (await status(client, execution_id))["nodes"]["approve"]["state"] == "waiting"


async def test_an_unknown_name_is_422_another_tenants_or_unknown_execution_404_and_nothing_kept(
    running: Running,
) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    await until_waiting(client, execution_id, "approve")
    before = await events(client, execution_id)

    unknown_name = await send(client, execution_id, {"ok": True}, name="refund")
    other_tenant = await send(client, execution_id, {"ok": True}, headers=auth("globex"))
    unknown = await send(client, "00000000-0000-4000-8000-000000000000", {"ok": True})
    not_an_id = await send(client, "nope", {"ok": True})
    bad_body = await client.post(
        f"/api/v1/executions/{execution_id}/signals/approval", json={"dta": 1}, headers=BOB
    )

    assert unknown_name.status_code == 422
    assert "'refund'" in unknown_name.json()["detail"]
    assert [other_tenant.status_code, unknown.status_code, not_an_id.status_code] == [404] * 3
    assert bad_body.status_code == 400
    assert await events(client, execution_id) == before


async def test_a_finished_execution_answers_409(running: Running) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    await until_waiting(client, execution_id, "approve")
    assert (await send(client, execution_id, {"ok": True})).status_code == 202

    again = await send(client, execution_id, {"ok": True})

    assert again.status_code == 409
    assert "completed" in again.json()["detail"]


async def test_the_same_idempotency_key_records_one_signal_and_another_body_is_409(
    running: Running,
) -> None:
    client = running.client
    pid = await create(client, approval([el("pause", "delay", seconds=60)]))
    execution_id = await start(client, pid)
    keyed = {**BOB, "Idempotency-Key": "approval-7"}

    first = await send(client, execution_id, {"ok": True}, headers=keyed)
    second = await send(client, execution_id, {"ok": True}, headers=keyed)
    other = await send(client, execution_id, {"ok": False}, headers=keyed)

    assert [first.status_code, second.status_code, other.status_code] == [202, 202, 409]
    received = [e for e in await events(client, execution_id) if e["type"] == "SignalReceived"]
    assert len(received) == 1


# --- timeouts, cancel, restarts ------------------------------------------------------------


async def test_a_wait_past_its_timeout_fails_it_timed_out_and_the_error_port_catches_it(
    running: Running,
) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval(timeout_s=3600)))
    waiting = await until_waiting(client, execution_id, "approve")
    assert parse_iso(waiting["nodes"]["approve"]["timeout_at"]) == parse_iso(T0) + 3600

    await running.advance(3599)
    assert (await send(client, execution_id, {"bad": 1})).status_code == 422  # still waits
    await running.advance(1)

    done = await until_status(client, execution_id, "completed")
    assert done["output"] == {"late": {"error": "timed out", "attempts": 1}}
    assert done["nodes"]["approve"]["state"] == "failed"
    assert (await send(client, execution_id, {"ok": True})).status_code == 409


async def test_cancel_while_waiting_ends_the_wait(running: Running) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval(timeout_s=60)))
    await until_waiting(client, execution_id, "approve")

    cancelled = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=ALICE)
    assert cancelled.status_code == 200

    doc = await until_status(client, execution_id, "cancelled")
    assert doc["nodes"]["approve"]["state"] == "cancelled"
    assert (await send(client, execution_id, {"ok": True})).status_code == 409


async def test_a_wait_survives_a_restart_of_loom_and_the_signal_then_completes_it(
    open_loom: Callable[[], Any],
) -> None:
    async with open_loom() as first:
        execution_id = await start(first.client, await create(first.client, approval()))
        await until_waiting(first.client, execution_id, "approve")

    async with open_loom() as second:
        response = await send(second.client, execution_id, {"ok": True})
        assert response.status_code == 202, response.text
        done = await until_status(second.client, execution_id, "completed")

    assert done["output"]["done"]["by"] == "bob"


async def test_the_audit_timeline_shows_who_signalled_what(running: Running) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    await until_waiting(client, execution_id, "approve")
    await send(client, execution_id, {"ok": True})
    await until_status(client, execution_id, "completed")

    trail = await events(client, execution_id)
    stored = running.loom.store.read_states("acme", UUID(execution_id))  # type: ignore[attr-defined]
    rows = timeline(stored)

    received = next(e for e in trail if e["type"] == "SignalReceived")
    assert (received["actor"], received["data"]["name"]) == ("bob", "approval")
    assert received["data"]["data"] == {"ok": True}
    row = next(r for r in rows if r.type == "SignalReceived")
    assert row.actor == "bob"
    assert 'signal approval {"ok":true}' in row.summary


# --- definitions -------------------------------------------------------------------------


async def test_a_schema_that_is_not_a_json_schema_is_refused_at_save_naming_the_element(
    running: Running,
) -> None:
    body = approval()
    body["threads"][0]["elements"][1]["params"]["schema"] = {"type": "no-such-type"}

    response = await running.client.post("/api/v1/processes", json=body, headers=ALICE)

    assert response.status_code == 422, response.text
    assert response.json()["key"] == "approve"
    assert "schema is not a JSON Schema" in response.json()["detail"]


# --- the inbox ---------------------------------------------------------------------------


async def inbox(client: Client, headers: dict[str, str] = ALICE, **params: Any) -> list[Any]:
    response = await client.get("/api/v1/signals", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json())


async def until_inbox(client: Client, count: int, **params: Any) -> list[Any]:
    seen: list[Any] = []

    async def counted() -> bool:
        nonlocal seen
        seen = await inbox(client, **params)
        return len(seen) == count

    await until(counted, f"{count} waiting in the inbox ({seen})")
    return seen


async def test_the_inbox_lists_what_the_tenants_executions_wait_for_until_answered_or_ended(
    running: Running,
) -> None:
    client = running.client
    approvals = await create(client, approval(timeout_s=600))
    other = approval()
    other["name"] = "Other"
    others = await create(client, other)
    first = await start(client, approvals)
    second = await start(client, approvals)
    third = await start(client, others)

    waiting = await until_inbox(client, 3)

    assert {w["execution_id"] for w in waiting} == {first, second, third}
    row = next(w for w in waiting if w["execution_id"] == first)
    assert row["process_id"] == approvals
    assert (row["element"], row["name"]) == ("approve", "approval")
    assert parse_iso(row["timeout_at"]) == parse_iso(row["waiting_since"]) + 600
    assert next(w for w in waiting if w["execution_id"] == third)["timeout_at"] is None
    assert {w["execution_id"] for w in await inbox(client, process_id=approvals)} == {
        first,
        second,
    }
    assert await inbox(client, headers=auth("globex")) == []
    assert await inbox(client, process_id="not-a-process") == []

    await send(client, first, {"ok": True})
    await client.post(f"/api/v1/executions/{third}/cancel", headers=ALICE)

    left = await until_inbox(client, 1)
    assert left[0]["execution_id"] == second


async def test_the_inbox_is_folded_again_by_a_rebuild(running: Running) -> None:
    client = running.client
    execution_id = await start(client, await create(client, approval()))
    await until_inbox(client, 1)
    await running.loom.projector.settled()  # as `loom projections rebuild`, with none saving

    await asyncio.to_thread(running.loom.projector.rebuild, "acme")

    assert [w["execution_id"] for w in await inbox(client)] == [execution_id]


async def test_an_import_into_an_empty_store_brings_the_inbox_along(
    open_loom: Callable[[], Any],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("one store kind is enough for the import's wiring")
    async with open_loom() as first:
        execution_id = await start(first.client, await create(first.client, approval()))
        await until_inbox(first.client, 1)
    archive = tmp_path / "acme.jsonl"
    monkeypatch.setenv("LOOM_DATABASE_URL", database_url)
    assert main(["export", "--tenant", "acme", "--output", str(archive)]) == 0

    monkeypatch.setenv("LOOM_DATABASE_URL", f"sqlite:///{tmp_path}/other/loom.db")
    assert main(["import", str(archive)]) == 0

    inbox_store = SQLiteInboxStore(str(tmp_path / "other" / "loom-read.db"))
    try:
        waits = inbox_store.list("acme", None, 10)
    finally:
        inbox_store.close()
    assert [(w.execution_id, w.element, w.name) for w in waits] == [
        (execution_id, "approve", "approval")
    ]
