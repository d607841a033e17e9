"""Tenant isolation over HTTP and WebSocket, and the tokens that must never get in.

Tenant B holding tenant A's ids gets exactly what an unknown id gets; B's lists
never show A's data; A's data is untouched by anything B tries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import AsyncTestClient

from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.harness.api import finished, listed
from tests.harness.waits import until
from tests.support import SECRET

Client = AsyncTestClient[Any]

A = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
B = {"Authorization": f"Bearer {mint_token(SECRET, 'globex', 'bob')}"}

PROCESS: dict[str, Any] = {
    "project": "Sales",
    "app": "Leads",
    "name": "Qualify lead",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {"key": "score", "type": "transform", "params": {"output": {"s": "input.n * 2"}}},
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "score"},
                {"source": "score", "target": "done"},
            ],
        }
    ],
}
WAITING: dict[str, Any] = {
    "project": "Sales",
    "app": "Timers",
    "name": "Wait a minute",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {"key": "wait", "type": "delay", "params": {"seconds": 60}},
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "wait"},
                {"source": "wait", "target": "done"},
            ],
        }
    ],
}


def _settings(database_url: str, **env: str) -> Settings:
    return Settings.from_env({"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET, **env})


class Seeded:
    """Everything tenant A owns, by id."""

    def __init__(self, **ids: str) -> None:
        self.process = ids["process"]
        self.execution = ids["execution"]
        self.running = ids["running"]
        self.agent = ids["agent"]
        self.key = ids["key"]


async def _ok(response: Any, status_code: int) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    return dict(response.json())


@pytest.fixture
async def seeded(client: Client) -> Seeded:
    post = client.post
    process = (await _ok(await post("/api/v1/processes", json=PROCESS, headers=A), 201))[
        "process_id"
    ]
    waiting = (await _ok(await post("/api/v1/processes", json=WAITING, headers=A), 201))[
        "process_id"
    ]
    key = "order-1"
    started = await post(
        "/api/v1/executions",
        json={"process_id": process, "input": {"n": 21}},
        headers={**A, "Idempotency-Key": key},
    )
    execution = (await _ok(started, 202))["execution_id"]
    running = (
        await _ok(await post("/api/v1/executions", json={"process_id": waiting}, headers=A), 202)
    )["execution_id"]
    agent = (
        await _ok(
            await post("/api/v1/agents", json={"name": "Scorer", "model": "m"}, headers=A), 201
        )
    )["agent_id"]
    await finished(client, execution, A)

    async def both_listed() -> bool:  # the list reads the read model, a moment behind
        return sorted(e["status"] for e in await listed(client, A)) == ["completed", "running"]

    await until(both_listed, "the finished and the running execution listed")
    return Seeded(process=process, execution=execution, running=running, agent=agent, key=key)


async def _a_sees(client: Client) -> tuple[Any, ...]:
    paths = ("/api/v1/processes", "/api/v1/projects", "/api/v1/agents")
    seen = [(await client.get(path, headers=A)).json() for path in paths]
    executions = (await client.get("/api/v1/executions", headers=A)).json()["items"]
    # Only what B could have changed; positions move as A's own executions run.
    seen.append(sorted((e["execution_id"], e["status"]) for e in executions))
    return tuple(seen)


# --- ids of another tenant answer exactly like unknown ids ----------------------------

ENDPOINTS = [
    ("GET", "/api/v1/processes/{process}", None),
    ("GET", "/api/v1/processes/{process}?version=1", None),
    ("PUT", "/api/v1/processes/{process}", {**PROCESS, "expected_version": 1}),
    ("POST", "/api/v1/executions", {"process_id": "{process}"}),
    ("POST", "/api/v1/executions", {"process_id": "{process}", "version": 1}),
    ("GET", "/api/v1/executions/{execution}/status", None),
    ("GET", "/api/v1/executions/{execution}/events", None),
    ("POST", "/api/v1/executions/{running}/cancel", None),
    ("POST", "/api/v1/executions/{execution}/rerun", {"from": "score"}),
    ("GET", "/api/v1/agents/{agent}", None),
    ("PUT", "/api/v1/agents/{agent}", {"name": "Mine now", "model": "m"}),
]


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return template.format(**ids)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    return template


async def test_another_tenants_ids_answer_404_exactly_like_unknown_ids(
    client: Client, seeded: Seeded
) -> None:
    theirs = {
        "process": seeded.process,
        "execution": seeded.execution,
        "running": seeded.running,
        "agent": seeded.agent,
    }
    unknown = {name: str(uuid.uuid4()) for name in theirs}
    before = await _a_sees(client)

    for method, path, body in ENDPOINTS:
        with_theirs = await client.request(
            method, _fill(path, theirs), json=_fill(body, theirs), headers=B
        )
        with_unknown = await client.request(
            method, _fill(path, unknown), json=_fill(body, unknown), headers=B
        )

        where = f"{method} {path}"
        assert with_theirs.status_code == 404, (where, with_theirs.text)
        assert with_unknown.status_code == 404, (where, with_unknown.text)
        assert set(with_theirs.json()) == set(with_unknown.json()), where
        said = with_theirs.json()["detail"]
        for name, their_id in theirs.items():
            said = said.replace(their_id, unknown[name])
        assert said == with_unknown.json()["detail"], where

    assert await _a_sees(client) == before
    status = await _ok(
        await client.get(f"/api/v1/executions/{seeded.running}/status", headers=A), 200
    )
    assert status["status"] == "running"  # B's cancel did not reach it
    agent = await _ok(await client.get(f"/api/v1/agents/{seeded.agent}", headers=A), 200)
    assert (agent["name"], agent["version"]) == ("Scorer", 1)
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


async def test_another_tenants_lists_show_none_of_its_data(client: Client, seeded: Seeded) -> None:
    assert (await client.get("/api/v1/processes", headers=B)).json() == []
    assert (await client.get("/api/v1/projects", headers=B)).json() == []
    assert (await client.get("/api/v1/agents", headers=B)).json() == []
    for params in (
        {},
        {"process_id": seeded.process},
        {"status": "completed"},
        {"status": "running"},
        {"limit": 500},
    ):
        page = await _ok(await client.get("/api/v1/executions", params=params, headers=B), 200)
        assert page == {"items": [], "next_cursor": None}, params
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


async def test_the_same_names_in_another_tenant_are_another_project(
    client: Client, seeded: Seeded
) -> None:
    ours = await _ok(await client.post("/api/v1/processes", json=PROCESS, headers=B), 201)
    execution = await _ok(
        await client.post("/api/v1/executions", json={"process_id": ours["process_id"]}, headers=B),
        202,
    )
    await finished(client, execution["execution_id"], B)
    their_projects = (await client.get("/api/v1/projects", headers=A)).json()

    projects = (await client.get("/api/v1/projects", headers=B)).json()
    processes = (await client.get("/api/v1/processes", headers=B)).json()

    assert [p["project_id"] for p in projects] == [ours["project_id"]]
    assert ours["project_id"] not in {p["project_id"] for p in their_projects}
    assert [p["process_id"] for p in processes] == [ours["process_id"]]
    assert [a["app_id"] for a in projects[0]["apps"]] == [ours["app_id"]]
    assert projects[0]["created_by"] == "bob"

    async def only_ours_listed() -> list[str]:
        page = (await client.get("/api/v1/executions", headers=B)).json()
        return [e["execution_id"] for e in page["items"]]

    for _ in range(200):
        if await only_ours_listed():
            break
        await asyncio.sleep(0.025)
    assert await only_ours_listed() == [execution["execution_id"]]
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


async def test_an_idempotency_key_of_another_tenant_never_answers_its_execution(
    client: Client, seeded: Seeded
) -> None:
    replayed = await client.post(
        "/api/v1/executions",
        json={"process_id": seeded.process, "input": {"n": 21}},
        headers={**B, "Idempotency-Key": seeded.key},
    )
    assert replayed.status_code == 404
    assert seeded.execution not in replayed.text

    ours = (await _ok(await client.post("/api/v1/processes", json=PROCESS, headers=B), 201))[
        "process_id"
    ]
    own = await client.post(
        "/api/v1/executions",
        json={"process_id": ours, "input": {"n": 21}},
        headers={**B, "Idempotency-Key": seeded.key},
    )
    assert own.status_code == 202
    assert own.json()["execution_id"] != seeded.execution
    assert (await finished(client, own.json()["execution_id"], B))["process_id"] == ours

    again = await client.post(
        "/api/v1/executions",
        json={"process_id": seeded.process, "input": {"n": 21}},
        headers={**A, "Idempotency-Key": seeded.key},
    )
    assert again.json()["execution_id"] == seeded.execution
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


# --- WebSocket ----------------------------------------------------------------------


async def _closed_with(client: Client, path: str, **kwargs: Any) -> int:
    with (
        await client.websocket_connect(path, **kwargs) as session,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        session.receive_json(timeout=5)
    return int(closed.value.code)


async def test_a_websocket_on_another_tenants_execution_closes_4404_like_an_unknown_one(
    client: Client, seeded: Seeded
) -> None:
    token = mint_token(SECRET, "globex", "bob")

    for execution_id in (seeded.execution, seeded.running, str(uuid.uuid4()), "nope"):
        code = await _closed_with(client, f"/ws/executions/{execution_id}", params={"token": token})
        assert code == 4404, execution_id
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


async def test_a_websocket_without_a_good_token_closes_4401(client: Client, seeded: Seeded) -> None:
    path = f"/ws/executions/{seeded.execution}"
    expired = mint_token(SECRET, "acme", "alice", ttl_s=-60)

    assert await _closed_with(client, path) == 4401
    for token in ("garbage", expired, _unsigned({"sub": "alice", "tenant_id": "acme"})):
        assert await _closed_with(client, path, params={"token": token}) == 4401
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


async def test_a_websocket_of_the_owner_gets_the_snapshot(client: Client, seeded: Seeded) -> None:
    token = mint_token(SECRET, "acme", "alice")
    path = f"/ws/executions/{seeded.execution}"

    with await client.websocket_connect(path, params={"token": token}) as session:
        first = session.receive_json(timeout=5)

    assert first["type"] == "snapshot"
    assert first["status"]["execution_id"] == seeded.execution
    assert first["status"]["status"] == "completed"
    await client.post(f"/api/v1/executions/{seeded.running}/cancel", headers=A)


# --- tokens that must get a 401 -----------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    claims = {"exp": int(time.time()) + 600, **claims}
    return _segments({"alg": alg, "typ": "JWT"}, claims) + "."


def _hs256(claims: dict[str, Any], key: bytes) -> str:
    signing_input = _segments({"alg": "HS256", "typ": "JWT"}, claims)
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _signed(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    payload = {"sub": "alice", "tenant_id": "acme", "exp": int(time.time()) + 600}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not ...}
    return jwt.encode(payload, secret, algorithm=algorithm)


BAD_TENANTS = [
    "../acme",
    "acme/../globex",
    "acme/x",
    "acme%2Fx",
    "acme\\x",
    "ACME",
    "-acme",
    "a b",
    "acme\x00",
    "",
    "a" * 64,
    "acme;drop",
]
BAD_HEADERS: dict[str, dict[str, str]] = {
    "no header": {},
    "an empty bearer": {"Authorization": "Bearer "},
    "another scheme": {"Authorization": "Basic YWxpY2U6cGFzcw=="},
    "garbage": {"Authorization": "Bearer garbage"},
    "three garbage segments": {"Authorization": "Bearer abc.def.ghi"},
    "an enormous token": {"Authorization": "Bearer " + "a" * 20_000},
    **{
        f"alg {alg}": {
            "Authorization": f"Bearer {_unsigned({'sub': 'a', 'tenant_id': 'acme'}, alg)}"
        }
        for alg in ("none", "None", "NONE")
    },
    "a wrong key": {"Authorization": f"Bearer {_signed('another-secret-long-enough-for-hs256!')}"},
    "HS512": {"Authorization": f"Bearer {_signed(algorithm='HS512')}"},
    "expired": {"Authorization": f"Bearer {_signed(exp=int(time.time()) - 60)}"},
    "exp not a number": {"Authorization": f"Bearer {_signed(exp='tomorrow')}"},
    "no sub": {"Authorization": f"Bearer {_signed(sub=...)}"},
    "no tenant_id": {"Authorization": f"Bearer {_signed(tenant_id=...)}"},
    "no exp": {"Authorization": f"Bearer {_signed(exp=...)}"},
    "an empty sub": {"Authorization": f"Bearer {_signed(sub='')}"},
    "a sub that is a number": {"Authorization": f"Bearer {_signed(sub=7)}"},
    "a tenant_id that is a list": {"Authorization": f"Bearer {_signed(tenant_id=['acme'])}"},
    **{
        f"tenant_id {tenant!r}": {"Authorization": f"Bearer {_signed(tenant_id=tenant)}"}
        for tenant in BAD_TENANTS
    },
}


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[Client]:
    app = web_app(Loom(_settings(f"sqlite:///{tmp_path}/loom.db")))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:
        yield test_client


async def test_every_bad_token_gets_401_on_every_route(sqlite_client: Client) -> None:
    routes = [
        ("GET", "/api/v1/processes", None),
        ("POST", "/api/v1/processes", PROCESS),
        ("GET", "/api/v1/projects", None),
        ("GET", "/api/v1/element-types", None),
        ("GET", "/api/v1/executions", None),
        ("POST", "/api/v1/executions", {"process_id": str(uuid.uuid4())}),
        ("GET", f"/api/v1/executions/{uuid.uuid4()}/status", None),
        ("GET", "/api/v1/agents", None),
        ("POST", "/api/v1/agents", {"name": "x", "model": "m"}),
    ]
    for name, headers in BAD_HEADERS.items():
        for method, path, body in routes:
            response = await sqlite_client.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (name, method, path, response.text)
            assert isinstance(response.json()["detail"], str)

    assert (await sqlite_client.get("/api/v1/processes", headers=A)).json() == []
    assert (await sqlite_client.get("/api/v1/agents", headers=A)).json() == []


async def test_a_good_token_gets_in_and_a_query_token_does_not_on_http(
    sqlite_client: Client,
) -> None:
    token = mint_token(SECRET, "acme", "alice")

    assert (await sqlite_client.get("/api/v1/processes", headers=A)).status_code == 200
    by_query = await sqlite_client.get("/api/v1/processes", params={"token": token})
    assert by_query.status_code == 401


async def test_with_a_public_key_only_its_tokens_get_in_never_hs256_signed_with_it(
    tmp_path: Path,
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = _settings(f"sqlite:///{tmp_path}/loom.db", LOOM_JWT_PUBLIC_KEY=pem)
    claims = {"sub": "alice", "tenant_id": "acme", "exp": int(time.time()) + 600}
    good = jwt.encode(claims, private, algorithm="RS256")
    forged = _hs256(claims, pem.encode())
    old_secret = mint_token(SECRET, "acme", "alice")

    async with AsyncTestClient(
        app=web_app(Loom(settings)), raise_server_exceptions=False
    ) as client:
        ok = await client.get("/api/v1/processes", headers={"Authorization": f"Bearer {good}"})
        for token in (forged, old_secret, _unsigned(claims)):
            refused = await client.get(
                "/api/v1/processes", headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 401, refused.text

    assert ok.status_code == 200
