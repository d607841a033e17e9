"""The REST API over HTTP, on SQLite and on a real PostgreSQL: health, the OpenAPI
document, processes (versions, moves, concurrent saves, audit fields) and element types.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.harness.api import ALICE, audited_by, auth, create, everything_saved
from tests.harness.looms import Client
from tests.support import contract_example

# The contract's own example.
EXAMPLE: dict[str, Any] = contract_example()


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
