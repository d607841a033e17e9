"""The OpenAPI document describes what the routes answer, not only what they take.

A client generated from /schema/openapi.json gets a typed answer for every route:
each operation documents a 2xx response with a schema, and the schemas name the
fields the answers really carry (checked against live answers here).
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain.ports import EXECUTION_STATES
from infra.auth import mint_token
from tests.support import SECRET, contract_example

Client = AsyncTestClient[Any]
ALICE = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}


@pytest.fixture
async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _schema(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    """The JSON schema of one answer, its `$ref` (or its items' `$ref`) resolved."""
    content = document["paths"][path][method]["responses"][status]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return _resolve(document, schema)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        resolved: dict[str, Any] = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
        return resolved
    return schema


def _component(document: dict[str, Any], name: str) -> dict[str, Any]:
    component: dict[str, Any] = document["components"]["schemas"][name]
    return component


async def test_every_operation_documents_a_2xx_answer_with_a_schema(
    document: dict[str, Any],
) -> None:
    undocumented = []
    operations = 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            operations += 1
            answers = {
                status: answer
                for status, answer in operation["responses"].items()
                if status.startswith("2")
            }
            if set(answers) == {"204"} and "content" not in answers["204"]:
                continue  # No Content: documented as having no body, and it has none
            schemas = [
                answer.get("content", {}).get("application/json", {}).get("schema")
                for answer in answers.values()
            ]
            if not schemas or not all(s and ("$ref" in s or "type" in s) for s in schemas):
                undocumented.append(f"{method.upper()} {path}")
    assert operations >= 18
    assert undocumented == []


async def test_the_status_document_schema_names_its_fields_and_statuses(
    document: dict[str, Any],
) -> None:
    status = _schema(document, "/api/v1/executions/{execution_id}/status", "get", "200")
    assert {
        "execution_id",
        "status",
        "nodes",
        "position",
        "from",
        "input",
        "failed_element",
    } <= set(status["properties"])
    # Always there (null or not) is required; what appears once something happened is not.
    assert {"execution_id", "status", "nodes", "output", "error", "from"} <= set(status["required"])
    assert not {"input", "failed_element"} & set(status["required"])
    assert status["properties"]["status"]["enum"] == list(EXECUTION_STATES)
    node = _resolve(document, status["properties"]["nodes"]["additionalProperties"])
    assert {"state", "output", "error", "attempts", "port", "wake_at", "retry_at"} <= set(
        node["properties"]
    )
    assert "skipped" in node["properties"]["state"]["enum"]

    page = _schema(document, "/api/v1/executions", "get", "200")
    summary = _resolve(document, page["properties"]["items"]["items"])
    assert "nodes" not in summary["properties"] and "input" not in summary["properties"]
    assert set(page["required"]) == {"items", "next_cursor"}


async def test_the_start_and_rerun_answers_and_the_agents_are_described(
    document: dict[str, Any],
) -> None:
    started = _schema(document, "/api/v1/executions", "post", "202")
    assert set(started["properties"]) == {"execution_id", "status"}
    rerun = _schema(document, "/api/v1/executions/{execution_id}/rerun", "post", "202")
    assert set(rerun["properties"]) == {"execution_id", "status", "rerun_of", "from"}

    agent = _schema(document, "/api/v1/agents/{agent_id}", "get", "200")
    assert {"agent_id", "version", "name", "model", "created_by", "modified_at"} <= set(
        agent["required"]
    )
    # The body a save takes is the one agent spec the use case checks.
    body = document["paths"]["/api/v1/agents"]["post"]["requestBody"]["content"]
    spec = _resolve(document, body["application/json"]["schema"])
    assert spec == _component(document, "AgentSpec")
    assert "expected_version" in spec["properties"]


async def test_live_answers_carry_exactly_the_documented_fields(
    client: Client, document: dict[str, Any]
) -> None:
    saved = await client.post("/api/v1/processes", json=contract_example(), headers=ALICE)
    assert saved.status_code == 201
    process_id = saved.json()["process_id"]
    started = await client.post(
        "/api/v1/executions/",
        json={"process_id": process_id, "input": {"amount": 70}},
        headers=ALICE,
    )
    execution_id = started.json()["execution_id"]
    answers = {
        ("/api/v1/processes", "post", "201"): saved.json(),
        ("/api/v1/processes/{process_id}", "get", "200"): (
            await client.get(f"/api/v1/processes/{process_id}", headers=ALICE)
        ).json(),
        ("/api/v1/executions", "post", "202"): started.json(),
        ("/api/v1/executions/{execution_id}/status", "get", "200"): (
            await client.get(f"/api/v1/executions/{execution_id}/status", headers=ALICE)
        ).json(),
        ("/api/v1/executions/{execution_id}/state", "get", "200"): (
            await client.get(f"/api/v1/executions/{execution_id}/state", headers=ALICE)
        ).json(),
    }
    for (path, method, status), answer in answers.items():
        schema = _schema(document, path, method, status)
        assert set(schema["required"]) <= set(answer) <= set(schema["properties"]), path
