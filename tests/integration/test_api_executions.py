"""The REST API over HTTP, on SQLite and on a real PostgreSQL: executions (start, events,
the list and its pages, cancel) and idempotency keys.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.harness.api import (
    ALICE,
    auth,
    create,
    finished,
    is_timestamp,
    listed,
    listed_once_caught_up,
    start,
)
from tests.harness.looms import Client
from tests.harness.waits import until
from tests.support import contract_example, with_delay

EVENT_TYPES = {
    "ExecutionStarted",
    "NodeExecuting",
    "NodeCompleted",
    "NodeFailed",
    "NodeSkipped",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionCancelled",
}

# The contract's own example.
EXAMPLE: dict[str, Any] = contract_example()


def _ids(items: list[Any]) -> list[str]:
    return [item["execution_id"] for item in items]


# --- executions ----------------------------------------------------------------------


async def test_an_execution_starts_with_202_and_completes_as_the_contract_shows(
    client: Client,
) -> None:
    process_id = await create(client, EXAMPLE)

    response = await client.post(
        "/api/v1/executions",
        json={"process_id": process_id, "input": {"amount": 120}},
        headers=ALICE,
    )

    assert response.status_code == 202
    assert response.json()["status"] in ("pending", "running", "completed")
    status = await finished(client, response.json()["execution_id"])
    assert {
        "execution_id",
        "process_id",
        "version",
        "status",
        "nodes",
        "output",
        "error",
        "position",
    } <= set(status)
    assert status["execution_id"] == response.json()["execution_id"]
    assert (status["process_id"], status["version"]) == (process_id, 1)
    assert status["status"] == "completed"
    assert status["output"] == {"yes": {"score": 240}}
    assert status["error"] is None
    score = status["nodes"]["score"]
    assert {"state", "output", "attempts", "started_at", "completed_at"} <= set(score)
    assert (score["state"], score["output"], score["attempts"]) == ("completed", {"score": 240}, 1)
    assert is_timestamp(score["started_at"]) and is_timestamp(score["completed_at"])
    assert status["nodes"]["no"]["state"] == "skipped"
    events = (
        await client.get(f"/api/v1/executions/{status['execution_id']}/events", headers=ALICE)
    ).json()
    assert status["position"] == events[-1]["seq"]


async def test_an_execution_runs_the_version_it_names(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    doubled_twice = copy.deepcopy(EXAMPLE)
    doubled_twice["threads"][0]["elements"][1]["params"]["output"]["score"] = "input.amount * 4"
    await client.put(
        f"/api/v1/processes/{process_id}",
        json={**doubled_twice, "expected_version": 1},
        headers=ALICE,
    )

    old = await client.post(
        "/api/v1/executions",
        json={"process_id": process_id, "version": 1, "input": {"amount": 30}},
        headers=ALICE,
    )
    new = await start(client, process_id, {"amount": 30})

    old_status = await finished(client, old.json()["execution_id"])
    new_status = await finished(client, new)
    assert (old_status["version"], old_status["output"]) == (1, {"no": {"score": 60}})
    assert (new_status["version"], new_status["output"]) == (2, {"yes": {"score": 120}})


UNSTARTABLE: list[tuple[dict[str, Any], int]] = [
    ({"process_id": "00000000-0000-4000-8000-000000000000"}, 404),
    ({"process_id": "not-an-id"}, 404),
    ({"version": 9}, 404),
    ({"version": 0}, 400),
    ({"version": -1}, 400),
    ({"version": "one"}, 400),
    ({"process_id": 5}, 400),
    ({"surprise": True}, 400),
]


async def test_a_start_that_cannot_run_is_refused_and_starts_nothing(client: Client) -> None:
    process_id = await create(client, EXAMPLE)

    for body, status_code in UNSTARTABLE:
        response = await client.post(
            "/api/v1/executions", json={"process_id": process_id, **body}, headers=ALICE
        )
        assert response.status_code == status_code, (body, response.text)
        assert isinstance(response.json()["detail"], str)

    assert await listed_once_caught_up(client, process_id) == []


async def test_the_event_trail_is_gapless_from_1_and_names_its_actor(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    execution_id = await start(client, process_id, {"amount": 120}, headers=auth(sub="carol"))
    await finished(client, execution_id)

    response = await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)

    assert response.status_code == 200
    events = response.json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for event in events:
        assert {"seq", "type", "at", "actor", "data"} <= set(event)
        assert event["type"] in EVENT_TYPES
        assert is_timestamp(event["at"])
        assert event["actor"] == "carol"
        assert isinstance(event["data"], dict)
    assert events[0]["type"] == "ExecutionStarted"
    assert events[0]["data"]["input"] == {"amount": 120}
    assert events[-1]["type"] == "ExecutionCompleted"
    completed = [e["data"] for e in events if e["type"] == "NodeCompleted"]
    assert {"element": "score", "output": {"score": 240}} in [
        {"element": d["element"], "output": d["output"]} for d in completed
    ]


async def test_the_list_filters_by_process_and_status_and_pages_with_a_cursor(
    client: Client,
) -> None:
    example = await create(client, EXAMPLE)
    waiting = await create(client, with_delay(60))
    done = [await start(client, example, {"amount": n}) for n in range(5)]
    parked = await start(client, waiting, {"n": 1})
    for execution_id in done:
        await finished(client, execution_id)

    async def all_listed() -> bool:
        completed = await listed(client, status="completed")
        return len(completed) == 5 and len(await listed(client)) == 6

    await until(all_listed, "six executions listed, five of them completed")
    everyone = await listed(client)
    assert {e["execution_id"] for e in everyone} == {*done, parked}
    for item in everyone:
        assert {"execution_id", "process_id", "version", "status"} <= set(item)
    assert {e["execution_id"] for e in await listed(client, process_id=example)} == set(done)
    assert [e["execution_id"] for e in await listed(client, process_id=waiting)] == [parked]
    assert {e["execution_id"] for e in await listed(client, status="completed")} == set(done)
    assert [e["execution_id"] for e in await listed(client, status="running")] == [parked]
    assert await listed(client, status="failed") == []
    assert await listed(client, process_id=example, status="running") == []

    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/executions", params=params, headers=ALICE)).json()
        pages.append([e["execution_id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10
    seen = [execution_id for page in pages for execution_id in page]
    assert all(len(page) <= 2 for page in pages)
    assert sorted(seen) == sorted([*done, parked])  # every one exactly once
    await client.post(f"/api/v1/executions/{parked}/cancel", headers=ALICE)


BAD_LIST_PARAMETERS: list[dict[str, Any]] = [
    {"status": "sleeping"},
    {"limit": 0},
    {"limit": 100_000},
    {"limit": "many"},
    {"cursor": "not-a-cursor"},
    {"cursor": "AHwwMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA="},  # forged, with a NUL
]


async def test_a_list_with_bad_parameters_is_a_4xx(client: Client) -> None:
    for params in BAD_LIST_PARAMETERS:
        response = await client.get("/api/v1/executions", params=params, headers=ALICE)
        assert 400 <= response.status_code < 500, (params, response.text)
        assert isinstance(response.json()["detail"], str)


async def test_a_list_for_a_process_id_no_one_has_is_empty(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    await finished(client, await start(client, process_id, {"amount": 1}))

    for odd in ("not-an-id", "\x00", "00000000-0000-4000-8000-000000000000"):
        assert await listed(client, process_id=odd) == []


async def test_cancel_stops_a_running_execution_and_409s_once_it_has_finished(
    client: Client,
) -> None:
    execution_id = await start(client, await create(client, with_delay(60)), {"n": 1})

    response = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=ALICE)

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    status = await finished(client, execution_id)
    assert status["status"] == "cancelled"
    events = (await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)).json()
    assert events[-1]["type"] == "ExecutionCancelled"
    assert events[-1]["actor"] == "alice"
    again = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=ALICE)
    assert again.status_code == 409
    completed = await start(client, await create(client, EXAMPLE), {"amount": 1})
    await finished(client, completed)
    late = await client.post(f"/api/v1/executions/{completed}/cancel", headers=ALICE)
    assert late.status_code == 409
    assert isinstance(late.json()["detail"], str)
    assert (await finished(client, completed))["status"] == "completed"


async def test_an_unknown_execution_is_404(client: Client) -> None:
    for execution_id in ("00000000-0000-4000-8000-000000000000", "nope"):
        for method, suffix in (("GET", "status"), ("GET", "events"), ("POST", "cancel")):
            url = f"/api/v1/executions/{execution_id}/{suffix}"
            response = await client.request(method, url, headers=ALICE)
            assert response.status_code == 404, url
            assert set(response.json()) == {"detail"}


# --- idempotency ---------------------------------------------------------------------


async def test_the_same_idempotency_key_and_body_answer_the_same_execution(
    client: Client,
) -> None:
    process_id = await create(client, EXAMPLE)
    body = {"process_id": process_id, "input": {"amount": 120}}
    headers = {**ALICE, "Idempotency-Key": "order-42"}

    first = await client.post("/api/v1/executions", json=body, headers=headers)
    again = await client.post("/api/v1/executions", json=body, headers=headers)

    assert first.status_code == again.status_code == 202
    assert again.json()["execution_id"] == first.json()["execution_id"]
    execution_id = first.json()["execution_id"]
    await finished(client, execution_id)
    events = (await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)).json()
    assert [e["type"] for e in events].count("ExecutionStarted") == 1
    assert _ids(await listed_once_caught_up(client, process_id)) == [execution_id]


async def test_concurrent_starts_with_one_idempotency_key_start_one_execution(
    client: Client,
) -> None:
    process_id = await create(client, EXAMPLE)
    body = {"process_id": process_id, "input": {"amount": 7}}
    headers = {**ALICE, "Idempotency-Key": "double-click"}

    responses = await asyncio.gather(
        *(client.post("/api/v1/executions", json=body, headers=headers) for _ in range(8))
    )

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["execution_id"] for r in responses}) == 1
    execution_id = responses[0].json()["execution_id"]
    await finished(client, execution_id)
    assert _ids(await listed_once_caught_up(client, process_id)) == [execution_id]


async def test_the_same_idempotency_key_with_another_body_is_409_and_starts_nothing(
    client: Client,
) -> None:
    process_id = await create(client, EXAMPLE)
    headers = {**ALICE, "Idempotency-Key": "order-42"}
    first = await client.post(
        "/api/v1/executions",
        json={"process_id": process_id, "input": {"amount": 120}},
        headers=headers,
    )
    await finished(client, first.json()["execution_id"])

    other = await client.post(
        "/api/v1/executions",
        json={"process_id": process_id, "input": {"amount": 1}},
        headers=headers,
    )

    assert other.status_code == 409
    assert isinstance(other.json()["detail"], str)
    assert _ids(await listed_once_caught_up(client, process_id)) == [first.json()["execution_id"]]


async def test_idempotency_keys_belong_to_one_tenant(client: Client) -> None:
    globex = auth("globex", "gina")
    ours = await create(client, EXAMPLE)
    theirs = await create(client, EXAMPLE, headers=globex)

    mine = await client.post(
        "/api/v1/executions",
        json={"process_id": ours, "input": {"amount": 1}},
        headers={**ALICE, "Idempotency-Key": "shared"},
    )
    their = await client.post(
        "/api/v1/executions",
        json={"process_id": theirs, "input": {"amount": 1}},
        headers={**globex, "Idempotency-Key": "shared"},
    )

    assert mine.status_code == their.status_code == 202
    assert mine.json()["execution_id"] != their.json()["execution_id"]
    assert (await finished(client, their.json()["execution_id"], globex))["process_id"] == theirs


async def test_an_overlong_idempotency_key_is_refused(client: Client) -> None:
    process_id = await create(client, EXAMPLE)

    response = await client.post(
        "/api/v1/executions",
        json={"process_id": process_id},
        headers={**ALICE, "Idempotency-Key": "k" * 500},
    )

    assert response.status_code == 422
    assert await listed_once_caught_up(client, process_id) == []
