"""The REST API over HTTP, on SQLite and on a real PostgreSQL: agents created, read,
listed and updated; bad, stale and unknown ones refused.
"""

from __future__ import annotations

from typing import Any

from tests.harness.api import ALICE, audited_by, auth
from tests.harness.looms import Client

# The contract's own example.
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
