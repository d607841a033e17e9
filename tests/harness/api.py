"""The REST API as a client holding a token sees it.

Tokens, saving a process, starting an execution, waiting for it to finish, and
the list of executions, which reads the read model and so trails the store a moment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from infra.auth import mint_token
from tests.harness.looms import Client
from tests.harness.waits import TERMINAL, until
from tests.support import SECRET


def auth(tenant: str = "acme", sub: str = "alice") -> dict[str, str]:
    """The Authorization header of `sub` in `tenant`, minted with SECRET."""
    return {"Authorization": f"Bearer {mint_token(SECRET, tenant, sub)}"}


ALICE = auth()
"""alice of acme: who the API tests are unless they say otherwise."""


async def create(client: Client, body: dict[str, Any], headers: dict[str, str] = ALICE) -> str:
    """Save a new process (it must answer 201); its id."""
    response = await client.post("/api/v1/processes", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["process_id"])


async def start(
    client: Client, process_id: str, input: Any = None, headers: dict[str, str] = ALICE
) -> str:
    """Start an execution (it must answer 202); its id."""
    body = {"process_id": process_id, "input": input}
    response = await client.post("/api/v1/executions", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["execution_id"])


async def status(client: Client, execution_id: str, headers: dict[str, str] = ALICE) -> Any:
    """The execution's status document (it must answer 200)."""
    response = await client.get(f"/api/v1/executions/{execution_id}/status", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def finished(
    client: Client, execution_id: str, headers: dict[str, str] = ALICE
) -> dict[str, Any]:
    """The status document once the execution ended."""
    document: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal document
        document = await status(client, execution_id, headers)
        return document["status"] in TERMINAL

    await until(ended, f"execution {execution_id} to finish")
    return document


async def listed(client: Client, headers: dict[str, str] = ALICE, **params: Any) -> list[Any]:
    """The items of one page of the list of executions (it must answer 200)."""
    response = await client.get("/api/v1/executions", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def listed_once_caught_up(
    client: Client, process_id: str, headers: dict[str, str] = ALICE
) -> list[Any]:
    """The list of executions once the read model has caught up with now, without the marker.

    The proof is a marker: an execution started now, once it is listed as finished, every
    execution stored before it is listed too (the read model folds the store in order).
    So a test can assert that something refused earlier was never listed.
    """
    marker = await start(client, process_id, {"marker": True, "amount": 0}, headers)
    await finished(client, marker, headers)

    async def marker_listed() -> bool:
        items = await listed(client, headers, limit=500)
        return any(i["execution_id"] == marker and i["status"] in TERMINAL for i in items)

    await until(marker_listed, f"the marker {marker} to be listed as finished")
    return [i for i in await listed(client, headers, limit=500) if i["execution_id"] != marker]


async def everything_saved(client: Client) -> tuple[Any, ...]:
    """What a refused request must leave exactly as it was."""
    paths = ("/api/v1/processes", "/api/v1/projects", "/api/v1/agents", "/api/v1/executions")
    responses = [await client.get(path, headers=ALICE) for path in paths]
    assert all(r.status_code == 200 for r in responses)
    return tuple(r.json() for r in responses)


def is_timestamp(value: Any) -> bool:
    """Whether `value` is an ISO 8601 timestamp, as the API writes them."""
    return (
        isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")) is not None
    )


def audited_by(document: dict[str, Any], created_by: str, modified_by: str) -> bool:
    """Whether the document carries its timestamps and who created and last changed it."""
    stamps = (document[f] for f in ("created_at", "modified_at"))
    return (
        all(is_timestamp(s) for s in stamps)
        and document["created_by"] == created_by
        and document["modified_by"] == modified_by
        and document["modified_at"] >= document["created_at"]
    )
