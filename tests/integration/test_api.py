"""The REST API of the contract over HTTP, on SQLite and on a real PostgreSQL.

Every endpoint, every definition rule (refused with 422 naming the `key`, and
nothing saved), idempotency, paging, audit fields, and bodies no client should
ever be able to turn into a 500.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.harness.api import ALICE, auth, create, finished, listed, listed_once_caught_up, start
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


async def everything_saved(client: Client) -> tuple[Any, ...]:
    """What a refused request must leave exactly as it was."""
    paths = ("/api/v1/processes", "/api/v1/projects", "/api/v1/agents", "/api/v1/executions")
    responses = [await client.get(path, headers=ALICE) for path in paths]
    assert all(r.status_code == 200 for r in responses)
    return tuple(r.json() for r in responses)


def is_timestamp(value: Any) -> bool:
    return (
        isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")) is not None
    )


def audited_by(document: dict[str, Any], created_by: str, modified_by: str) -> bool:
    stamps = (document[f] for f in ("created_at", "modified_at"))
    return (
        all(is_timestamp(s) for s in stamps)
        and document["created_by"] == created_by
        and document["modified_by"] == modified_by
        and document["modified_at"] >= document["created_at"]
    )


# --- health and OpenAPI --------------------------------------------------------------


async def test_health_answers_ok_without_a_token(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_the_openapi_document_lists_every_endpoint_of_the_contract(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/v1/processes": {"get", "post"},
        "/api/v1/processes/{process_id}": {"get", "put"},
        "/api/v1/projects": {"get"},
        "/api/v1/element-types": {"get"},
        "/api/v1/executions": {"get", "post"},
        "/api/v1/executions/{execution_id}/status": {"get"},
        "/api/v1/executions/{execution_id}/events": {"get"},
        "/api/v1/executions/{execution_id}/cancel": {"post"},
        "/api/v1/executions/{execution_id}/rerun": {"post"},
        "/api/v1/agents": {"get", "post"},
        "/api/v1/agents/{agent_id}": {"get", "put"},
        "/health": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), path


# --- processes -----------------------------------------------------------------------


async def test_creating_a_process_answers_201_with_an_id_for_every_thread_and_element(
    client: Client,
) -> None:
    response = await client.post("/api/v1/processes", json=EXAMPLE, headers=ALICE)

    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert {"process_id", "project_id", "app_id"} <= set(body)
    assert set(body["threads"]) == {"main"}
    assert set(body["elements"]) == {"start", "score", "big", "yes", "no"}
    ids = [body["process_id"], *body["threads"].values(), *body["elements"].values()]
    assert len(set(ids)) == len(ids)


async def test_a_project_and_an_app_are_created_on_first_use_of_their_names(
    client: Client,
) -> None:
    first = (await client.post("/api/v1/processes", json=EXAMPLE, headers=ALICE)).json()
    same_app = (
        await client.post("/api/v1/processes", json={**EXAMPLE, "name": "Other"}, headers=ALICE)
    ).json()
    other_app = (
        await client.post("/api/v1/processes", json={**EXAMPLE, "app": "Deals"}, headers=ALICE)
    ).json()

    assert first["project_id"] == same_app["project_id"] == other_app["project_id"]
    assert first["app_id"] == same_app["app_id"] != other_app["app_id"]
    projects = (await client.get("/api/v1/projects", headers=ALICE)).json()
    assert len(projects) == 1
    apps = {app["name"]: app for app in projects[0]["apps"]}
    assert set(apps) == {"Leads", "Deals"}
    assert {p["process_id"] for p in apps["Leads"]["processes"]} == {
        first["process_id"],
        same_app["process_id"],
    }
    assert [p["process_id"] for p in apps["Deals"]["processes"]] == [other_app["process_id"]]


async def test_a_process_reads_back_as_it_was_saved(client: Client) -> None:
    process_id = await create(client, EXAMPLE)

    response = await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)

    assert response.status_code == 200
    document = response.json()
    assert document["process_id"] == process_id
    assert document["version"] == 1
    assert (document["project"], document["app"], document["name"]) == (
        "Sales",
        "Leads",
        "Qualify lead",
    )
    assert document["threads"] == EXAMPLE["threads"]
    assert audited_by(document, "alice", "alice")


async def test_elements_keep_their_name_and_position(client: Client) -> None:
    body = copy.deepcopy(EXAMPLE)
    body["threads"][0]["elements"][1] |= {"name": "Score it", "position": {"x": 120, "y": 40.5}}
    process_id = await create(client, body)

    document = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()

    score = document["threads"][0]["elements"][1]
    assert score["name"] == "Score it"
    assert score["position"] == {"x": 120, "y": 40.5}


async def test_put_with_the_expected_version_saves_the_next_version(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    renamed = {**EXAMPLE, "name": "Qualify lead v2", "expected_version": 1}

    response = await client.put(f"/api/v1/processes/{process_id}", json=renamed, headers=ALICE)

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["process_id"] == process_id
    latest = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()
    first = (
        await client.get(f"/api/v1/processes/{process_id}", params={"version": 1}, headers=ALICE)
    ).json()
    assert (latest["version"], latest["name"]) == (2, "Qualify lead v2")
    assert (first["version"], first["name"]) == (1, "Qualify lead")
    assert latest["versions"] == [1, 2]


async def test_a_version_saved_under_another_project_moves_the_process_there(
    client: Client,
) -> None:
    process_id = await create(client, EXAMPLE)
    moved = {**EXAMPLE, "project": "Ops", "app": "Triage", "expected_version": 1}

    response = await client.put(f"/api/v1/processes/{process_id}", json=moved, headers=ALICE)

    assert response.status_code == 200
    processes = (await client.get("/api/v1/processes", headers=ALICE)).json()
    assert [(p["process_id"], p["project"], p["app"]) for p in processes] == [
        (process_id, "Ops", "Triage")
    ]
    projects = (await client.get("/api/v1/projects", headers=ALICE)).json()
    where = {
        (project["name"], app["name"])
        for project in projects
        for app in project["apps"]
        for filed in app["processes"]
        if filed["process_id"] == process_id
    }
    assert where == {("Ops", "Triage")}


async def test_a_stale_expected_version_is_409_and_saves_nothing(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    url = f"/api/v1/processes/{process_id}"
    assert (
        await client.put(url, json={**EXAMPLE, "expected_version": 1}, headers=ALICE)
    ).status_code == 200
    before = await everything_saved(client)

    stale = await client.put(
        url, json={**EXAMPLE, "name": "lost", "expected_version": 1}, headers=ALICE
    )

    assert stale.status_code == 409
    assert isinstance(stale.json()["detail"], str)
    assert await everything_saved(client) == before
    assert (await client.get(url, headers=ALICE)).json()["version"] == 2


async def test_of_concurrent_saves_of_one_version_exactly_one_wins(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    url = f"/api/v1/processes/{process_id}"

    responses = await asyncio.gather(
        *(
            client.put(url, json={**EXAMPLE, "name": f"n{i}", "expected_version": 1}, headers=ALICE)
            for i in range(5)
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    winner = next(r for r in responses if r.status_code == 200)
    document = (await client.get(url, headers=ALICE)).json()
    assert document["versions"] == [1, 2]
    assert document["name"] == f"n{responses.index(winner)}"


async def test_put_without_an_expected_version_is_refused(client: Client) -> None:
    process_id = await create(client, EXAMPLE)

    response = await client.put(f"/api/v1/processes/{process_id}", json=EXAMPLE, headers=ALICE)

    assert response.status_code == 422
    document = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()
    assert document["version"] == 1


async def test_an_unknown_process_or_version_is_404(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    unknown = "00000000-0000-4000-8000-000000000000"

    assert (await client.get(f"/api/v1/processes/{unknown}", headers=ALICE)).status_code == 404
    assert (await client.get("/api/v1/processes/not-an-id", headers=ALICE)).status_code == 404
    missing_version = await client.get(
        f"/api/v1/processes/{process_id}", params={"version": 7}, headers=ALICE
    )
    assert missing_version.status_code == 404
    put = await client.put(
        f"/api/v1/processes/{unknown}", json={**EXAMPLE, "expected_version": 1}, headers=ALICE
    )
    assert put.status_code == 404
    assert set(put.json()) == {"detail"}


async def test_the_list_of_processes_shows_each_at_its_latest_version(client: Client) -> None:
    assert (await client.get("/api/v1/processes", headers=ALICE)).json() == []
    first = await create(client, EXAMPLE)
    second = await create(client, {**EXAMPLE, "name": "Second"})
    await client.put(
        f"/api/v1/processes/{first}", json={**EXAMPLE, "expected_version": 1}, headers=ALICE
    )

    processes = (await client.get("/api/v1/processes", headers=ALICE)).json()

    by_id = {p["process_id"]: p for p in processes}
    assert set(by_id) == {first, second}
    assert by_id[first]["version"] == 2
    assert by_id[second]["name"] == "Second"
    assert all(audited_by(p, "alice", "alice") for p in processes)


async def test_audit_fields_come_from_the_token_never_from_the_body(client: Client) -> None:
    forged = {
        "created_by": "mallory",
        "created_at": "1999-01-01T00:00:00Z",
        "modified_by": "mallory",
        "modified_at": "1999-01-01T00:00:00Z",
    }
    response = await client.post("/api/v1/processes", json={**EXAMPLE, **forged}, headers=ALICE)
    assert response.status_code == 201
    process_id = response.json()["process_id"]
    bob = auth(sub="bob")
    again = {**EXAMPLE, **forged, "expected_version": 1}
    assert (
        await client.put(f"/api/v1/processes/{process_id}", json=again, headers=bob)
    ).status_code == 200

    document = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()
    project = (await client.get("/api/v1/projects", headers=ALICE)).json()[0]

    assert audited_by(document, "alice", "bob")
    assert document["created_at"] > "2000"
    assert audited_by(project, "alice", project["modified_by"])
    assert all(audited_by(app, "alice", app["modified_by"]) for app in project["apps"])


# --- element types -------------------------------------------------------------------


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = schema["$defs"][name]
    return dict(schema.get("properties", {}))


async def test_every_element_type_is_described(client: Client) -> None:
    response = await client.get("/api/v1/element-types", headers=ALICE)

    assert response.status_code == 200
    types = {t["type"]: t for t in response.json()}
    contract = {
        "trigger",
        "transform",
        "condition",
        "join",
        "delay",
        "http",
        "agent",
        "end",
        "fail",
    }
    assert contract <= set(types)
    for kind in types.values():
        assert isinstance(kind["params_schema"], dict)
        assert isinstance(kind["ports"], list)
        assert isinstance(kind["side_effects"], bool)
    assert {k for k, t in types.items() if t["side_effects"]} >= {"http", "agent", "delay"}
    assert not any(types[k]["side_effects"] for k in ("trigger", "transform", "condition", "end"))
    assert {"true", "false"} <= set(types["condition"]["ports"])
    assert "expression" in _properties(types["condition"]["params_schema"])
    assert {"method", "url", "headers", "body", "timeout_s"} <= set(
        _properties(types["http"]["params_schema"])
    )
    assert {"agent_id", "prompt"} <= set(_properties(types["agent"]["params_schema"]))
    assert "seconds" in _properties(types["delay"]["params_schema"])
    for kind in ("http", "agent", "delay"):
        assert {"retry", "timeout_s"} <= set(_properties(types[kind]["params_schema"])), kind


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


# --- agents --------------------------------------------------------------------------


async def test_agents_can_be_created_read_listed_and_updated(client: Client) -> None:
    created = await client.post(
        "/api/v1/agents",
        json={"name": "Scorer", "system_prompt": "Score leads.", "model": "gpt-4o-mini"},
        headers=ALICE,
    )
    assert created.status_code == 201
    agent_id = created.json()["agent_id"]

    read = await client.get(f"/api/v1/agents/{agent_id}", headers=ALICE)
    assert read.status_code == 200
    assert read.json()["name"] == "Scorer"
    assert read.json()["system_prompt"] == "Score leads."
    assert audited_by(read.json(), "alice", "alice")

    updated = await client.put(
        f"/api/v1/agents/{agent_id}",
        json={
            "name": "Scorer",
            "system_prompt": "Be strict.",
            "model": "gpt-4o",
            "temperature": 0.2,
        },
        headers=auth(sub="bob"),
    )
    assert updated.status_code == 200
    agent = (await client.get(f"/api/v1/agents/{agent_id}", headers=ALICE)).json()
    assert (agent["system_prompt"], agent["model"], agent["temperature"]) == (
        "Be strict.",
        "gpt-4o",
        0.2,
    )
    assert audited_by(agent, "alice", "bob")

    second = await client.post(
        "/api/v1/agents", json={"name": "Writer", "model": "gpt-4o-mini"}, headers=ALICE
    )
    agents = (await client.get("/api/v1/agents", headers=ALICE)).json()
    assert {a["agent_id"] for a in agents} == {agent_id, second.json()["agent_id"]}


BAD_AGENTS: list[tuple[dict[str, Any], int]] = [
    ({"name": "", "model": "gpt-4o-mini"}, 422),
    ({"name": "x", "model": ""}, 422),
    ({"name": "x", "model": "m", "temperature": 7}, 422),
    ({"name": "x", "model": "m", "temperature": "hot"}, 400),
    ({"name": 5, "model": "m"}, 400),
    ({"model": "m"}, 400),
    ({"name": "x", "model": "m", "owner": "mallory"}, 400),
]


async def test_a_bad_agent_is_refused_and_nothing_saved(client: Client) -> None:
    for body, status_code in BAD_AGENTS:
        response = await client.post("/api/v1/agents", json=body, headers=ALICE)
        assert response.status_code == status_code, (body, response.text)
        assert isinstance(response.json()["detail"], str)

    assert (await client.get("/api/v1/agents", headers=ALICE)).json() == []


async def test_an_agent_update_with_a_stale_version_is_409(client: Client) -> None:
    agent_id = (
        await client.post("/api/v1/agents", json={"name": "A", "model": "m"}, headers=ALICE)
    ).json()["agent_id"]
    url = f"/api/v1/agents/{agent_id}"
    assert (
        await client.put(
            url, json={"name": "B", "model": "m", "expected_version": 1}, headers=ALICE
        )
    ).status_code == 200

    stale = await client.put(
        url, json={"name": "C", "model": "m", "expected_version": 1}, headers=ALICE
    )

    assert stale.status_code == 409
    assert (await client.get(url, headers=ALICE)).json()["name"] == "B"


async def test_an_unknown_agent_is_404(client: Client) -> None:
    for agent_id in ("00000000-0000-4000-8000-000000000000", "nope"):
        url = f"/api/v1/agents/{agent_id}"
        assert (await client.get(url, headers=ALICE)).status_code == 404
        put = await client.put(url, json={"name": "x", "model": "m"}, headers=ALICE)
        assert put.status_code == 404
        assert set(put.json()) == {"detail"}

    assert (await client.get("/api/v1/agents", headers=ALICE)).json() == []


# --- definition rules: 422 naming the key, nothing saved ----------------------------


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    change(body["threads"][0])
    return body


def _element(thread: dict[str, Any], key: str) -> dict[str, Any]:
    return next(e for e in thread["elements"] if e["key"] == key)


def _set(thread: dict[str, Any], key: str, **fields: Any) -> None:
    _element(thread, key).update(fields)


RULES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "a key repeats": (
        _broken(lambda t: t["elements"].append({"key": "score", "type": "end"})),
        {"score"},
    ),
    "a connection names a missing element": (
        _broken(lambda t: t["connections"].append({"source": "yes", "target": "ghost"})),
        {"ghost"},
    ),
    "a type is unknown": (_broken(lambda t: _set(t, "no", type="teleport")), {"no"}),
    "transform params of the wrong type": (
        _broken(lambda t: _set(t, "score", params={"output": 5})),
        {"score"},
    ),
    "a condition without its expression": (_broken(lambda t: _set(t, "big", params={})), {"big"}),
    "a delay of no number": (
        _broken(
            lambda t: t["elements"].append(
                {"key": "nap", "type": "delay", "params": {"seconds": "soon"}}
            )
        ),
        {"nap"},
    ),
    "an http element without a url": (
        _broken(
            lambda t: t["elements"].append(
                {"key": "call", "type": "http", "params": {"method": "GET"}}
            )
        ),
        {"call"},
    ),
    "an unknown param": (
        _broken(lambda t: _set(t, "big", params={"expression": "true", "colour": "red"})),
        {"big"},
    ),
    "a condition expression does not compile": (
        _broken(lambda t: _set(t, "big", params={"expression": "input.score >"})),
        {"big"},
    ),
    "a transform expression does not compile": (
        _broken(lambda t: _set(t, "score", params={"output": {"score": "input.amount * ("}})),
        {"score"},
    ),
    "a thread without a trigger": (
        _broken(lambda t: _set(t, "start", type="transform", params={"expression": "input"})),
        {"main"},
    ),
    "a thread with two triggers": (
        _broken(lambda t: t["elements"].append({"key": "again", "type": "trigger"})),
        {"again"},
    ),
    "a condition's connection without source_port": (
        _broken(lambda t: t["connections"][2].pop("source_port")),
        {"big"},
    ),
    "a condition's connection on a port it lacks": (
        _broken(lambda t: t["connections"][3].update(source_port="maybe")),
        {"big"},
    ),
    "a cycle": (
        _broken(lambda t: t["connections"].append({"source": "yes", "target": "score"})),
        {"score", "big", "yes"},
    ),
}


@pytest.mark.parametrize("rule", RULES)
async def test_a_definition_breaking_a_rule_is_422_naming_the_key_and_saves_nothing(
    client: Client, rule: str
) -> None:
    body, keys = RULES[rule]
    kept = await create(client, {**EXAMPLE, "project": "Kept"})
    before = await everything_saved(client)

    created = await client.post("/api/v1/processes", json=body, headers=ALICE)
    updated = await client.put(
        f"/api/v1/processes/{kept}", json={**body, "expected_version": 1}, headers=ALICE
    )

    for response in (created, updated):
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
        assert response.json()["key"] in keys, response.json()
    assert await everything_saved(client) == before


async def test_a_definition_without_a_usable_name_or_thread_is_422(client: Client) -> None:
    for change in ({"project": ""}, {"name": "   "}, {"app": "x" * 201}, {"threads": []}):
        body = {**EXAMPLE, **change}
        response = await client.post("/api/v1/processes", json=body, headers=ALICE)
        assert response.status_code == 422, change

    assert (await client.get("/api/v1/processes", headers=ALICE)).json() == []


# --- bodies no client can turn into a 500 -------------------------------------------

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = {
    "malformed JSON": b'{"project": "Sales", ',
    "not JSON at all": b"hello",
    "an empty body": b"",
    "JSON null": b"null",
    "a JSON array": b"[1, 2]",
    "a JSON string": b'"process"',
    "a NaN": b'{"process_id": NaN, "name": NaN}',
    "a lone surrogate": b'{"process_id": "\\ud800", "name": "\\ud800"}',
    "deeply nested": ('{"process_id": "x", "name": "x", "input": ' + DEEP + "}").encode(),
    "deeply nested threads": (
        '{"project": "p", "app": "a", "name": "n", "threads": ' + DEEP + "}"
    ).encode(),
}
WRONG_TYPES: dict[str, list[Any]] = {
    "/api/v1/processes": [
        {**EXAMPLE, "project": 1},
        {**EXAMPLE, "threads": "main"},
        {**EXAMPLE, "threads": [1]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": "start"}]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": [{"key": 1, "type": "trigger"}]}]},
        {**EXAMPLE, "threads": [{"key": "main", "elements": [{"key": "s", "type": None}]}]},
        {**EXAMPLE, "threads": [{"key": "main", "connections": [{"source": "s"}]}]},
        {
            **EXAMPLE,
            "threads": [{"key": "main", "elements": [{"key": "s", "type": "trigger"}], "x": 1}],
        },
        _broken(lambda t: t["elements"][0].update(colour="red")),
        _broken(lambda t: t["elements"][0].update(position={"x": "left", "y": 0})),
        _broken(lambda t: t["connections"][0].update(weight=3)),
        {**EXAMPLE, "expected_version": "one"},
    ],
    "/api/v1/executions": [
        {"process_id": ["a"]},
        {"process_id": None},
        {},
        {"process_id": "x", "version": 1.5},
        {"process_id": "x", "version": True},
    ],
    "/api/v1/agents": [
        {"name": ["x"], "model": "m"},
        {"name": "x", "model": "m", "temperature": [1]},
        {"name": "x", "model": "m", "max_tokens": 1.5},
        {"name": "x", "model": {"id": "m"}},
    ],
}


BODY_PATHS = ["/api/v1/processes", "/api/v1/executions", "/api/v1/agents"]


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_that_is_not_the_json_asked_for_is_a_4xx(client: Client, path: str) -> None:
    before = await everything_saved(client)

    for kind, content in BAD_BODIES.items():
        response = await client.post(path, content=content, headers={**ALICE, **JSON})
        assert 400 <= response.status_code < 500, (kind, response.text)
        assert isinstance(response.json()["detail"], str)

    assert await everything_saved(client) == before


# msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 inside a string.
@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_that_is_not_utf8_is_a_4xx(client: Client, path: str) -> None:
    content = b'{"process_id": "\xff\xfe", "name": "\xff", "model": "m"}'

    response = await client.post(path, content=content, headers={**ALICE, **JSON})

    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("path", BODY_PATHS)
async def test_a_body_of_the_wrong_types_or_with_unknown_fields_is_a_4xx(
    client: Client, path: str
) -> None:
    before = await everything_saved(client)

    for body in WRONG_TYPES[path]:
        response = await client.post(path, json=body, headers=ALICE)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert isinstance(response.json()["detail"], str)

    assert await everything_saved(client) == before


async def test_a_body_over_one_mebibyte_is_413(client: Client) -> None:
    huge = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'

    for path in BODY_PATHS:
        response = await client.post(path, content=huge, headers={**ALICE, **JSON})
        assert response.status_code == 413, path
        assert isinstance(response.json()["detail"], str)


async def test_a_put_with_a_bad_body_changes_nothing(client: Client) -> None:
    process_id = await create(client, EXAMPLE)
    agent_id = (
        await client.post("/api/v1/agents", json={"name": "A", "model": "m"}, headers=ALICE)
    ).json()["agent_id"]
    before = await everything_saved(client)

    for path in (f"/api/v1/processes/{process_id}", f"/api/v1/agents/{agent_id}"):
        for content in (b"{", b"[]", DEEP.encode(), b'{"name": 1}'):
            response = await client.put(path, content=content, headers={**ALICE, **JSON})
            assert 400 <= response.status_code < 500, (path, content[:20], response.text)

    assert await everything_saved(client) == before


async def test_odd_but_valid_json_is_stored_and_read_back_exactly(client: Client) -> None:
    process_id = await create(client, {**EXAMPLE, "name": "Nul \x00 and émoji 🧵"})
    odd_input = {"amount": 3, "text": "\x00 zero", "big": 2**62, "nested": [[[{"a": None}]]]}

    execution_id = await start(client, process_id, odd_input)

    status = await finished(client, execution_id)
    assert status["status"] == "completed"
    events = (await client.get(f"/api/v1/executions/{execution_id}/events", headers=ALICE)).json()
    assert events[0]["data"]["input"] == odd_input
    document = (await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)).json()
    assert document["name"] == "Nul \x00 and émoji 🧵"
