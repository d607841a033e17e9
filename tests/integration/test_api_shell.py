"""The HTTP shell over real ASGI: authentication, error bodies, request ids, health, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Request, WebSocket, get, post, websocket
from litestar.di import NamedDependency, Provide
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, JSONBody
from litestar.testing import AsyncTestClient
from structlog.testing import LogCapture

from infra.auth import Identity, mint_token
from infra.settings import Settings
from services.roles.api.app import create_app
from services.roles.auth import accept_authenticated
from services.usecases.errors import Conflict, Invalid, NotFound, Unavailable
from tests.support import SECRET


class Greeting(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    times: int = 1


@get("/api/v1/whoami")
async def whoami(request: Request[Identity, Any, Any]) -> dict[str, str]:
    return {"tenant": request.user.tenant, "sub": request.user.sub}


@post("/api/v1/greetings")
async def greet(data: JSONBody[Greeting]) -> dict[str, str]:
    return {"greeting": f"hello {data.name}" * data.times}


@post("/api/v1/anything")
async def anything(data: JSONBody[Any]) -> dict[str, str]:
    return {"type": type(data).__name__}


@get("/api/v1/boom")
async def boom() -> None:
    raise RuntimeError("a bug with a secret inside")


@get("/api/v1/errors/{kind:str}")
async def domain_error(kind: FromPath[str]) -> None:
    match kind:
        case "missing":
            raise NotFound("execution not found")
        case "invalid":
            raise Invalid("unknown element type 'teleport'", key="jump")
        case "stale":
            raise Conflict("stale expected_version", current_version=3)
        case _:
            raise Unavailable("event store unreachable")


@websocket("/ws/whoami")
async def ws_whoami(socket: WebSocket[Any, Any, Any]) -> None:
    identity = await accept_authenticated(socket)
    if identity is None:
        return
    await socket.send_json({"tenant": identity.tenant, "sub": identity.sub})
    await socket.close()


ROUTES = [whoami, greet, anything, boom, domain_error, ws_whoami]


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings(jwt_secret=SECRET, jwt_secret_is_dev=False)
    app = create_app(settings, route_handlers=ROUTES)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}


async def test_a_request_without_a_token_gets_401(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json() == {"detail": "missing bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer " + mint_token("another-secret-that-is-long-enough-for-hs", "acme", "alice"),
        "Bearer " + mint_token(SECRET, "acme", "alice", ttl_s=-60),
        "Basic YWxpY2U6cGFzcw==",
        "Bearer",
    ],
)
async def test_a_request_with_a_bad_token_gets_401(
    client: AsyncTestClient[Any], header: str
) -> None:
    response = await client.get("/api/v1/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


async def test_a_query_token_does_not_authenticate_plain_http(
    client: AsyncTestClient[Any],
) -> None:
    token = mint_token(SECRET, "acme", "alice")
    response = await client.get("/api/v1/whoami", params={"token": token})
    assert response.status_code == 401


async def test_a_good_token_reaches_the_route_with_its_identity(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    response = await client.get("/api/v1/whoami", headers=auth)
    assert response.status_code == 200
    assert response.json() == {"tenant": "acme", "sub": "alice"}


async def test_health_is_open(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_is_open_and_declares_bearer_auth(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Loom"
    assert schema["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert {"BearerToken": []} in schema["security"]
    assert "/api/v1/whoami" in schema["paths"]


async def test_every_response_carries_a_request_id(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    ok = await client.get("/api/v1/whoami", headers=auth)
    refused = await client.get("/api/v1/whoami")
    unknown = await client.get("/nowhere", headers=auth)
    ids = {r.headers.get("x-request-id") for r in (ok, refused, unknown)}
    assert None not in ids
    assert len(ids) == 3


async def test_a_sane_caller_request_id_is_echoed(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    hostile = await client.get("/health", headers={"X-Request-Id": "a\tb" + "x" * 100})
    assert hostile.headers["x-request-id"] != "a\tb" + "x" * 100


async def test_an_unknown_route_is_a_json_404(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    response = await client.get("/api/v1/nowhere", headers=auth)
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


async def test_a_valid_body_is_decoded(client: AsyncTestClient[Any], auth: dict[str, str]) -> None:
    response = await client.post("/api/v1/greetings", json={"name": "Ada"}, headers=auth)
    assert response.status_code == 201
    assert response.json() == {"greeting": "hello Ada"}


async def test_malformed_json_is_a_400_with_detail(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    response = await client.post(
        "/api/v1/greetings",
        content=b'{"name": "Ada"',
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "malformed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": 5}, "name"),
        ({"times": 2}, "name"),
        ({"name": "Ada", "shoe_size": 44}, "shoe_size"),
        ([1, 2], "object"),
    ],
)
async def test_a_body_of_the_wrong_shape_is_a_400_naming_the_problem(
    client: AsyncTestClient[Any], auth: dict[str, str], body: Any, words: str
) -> None:
    response = await client.post("/api/v1/greetings", json=body, headers=auth)
    assert response.status_code == 400
    assert words in response.json()["detail"]


@pytest.mark.parametrize("route", ["/api/v1/greetings", "/api/v1/anything"])
async def test_deeply_nested_json_is_a_400_not_a_500(
    client: AsyncTestClient[Any], auth: dict[str, str], route: str
) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    response = await client.post(
        route, content=deep, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


async def test_an_oversized_body_is_a_413(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    huge = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    response = await client.post(
        "/api/v1/anything", content=huge, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert set(response.json()) == {"detail"}


async def test_an_unexpected_exception_is_a_bare_500(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    response = await client.get("/api/v1/boom", headers=auth)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "secret" not in response.text


async def test_an_unexpected_exception_is_logged_with_its_traceback_and_context(
    client: AsyncTestClient[Any], auth: dict[str, str], logs: LogCapture
) -> None:
    response = await client.get("/api/v1/boom", headers=auth)
    [entry] = [e for e in logs.entries if e["event"] == "unhandled_exception"]
    assert isinstance(entry["exc_info"], RuntimeError)
    assert entry["log_level"] == "error"
    assert entry["request_id"] == response.headers["x-request-id"]
    assert (entry["tenant_id"], entry["sub"]) == ("acme", "alice")


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("missing", 404, {"detail": "execution not found"}),
        ("invalid", 422, {"detail": "unknown element type 'teleport'", "key": "jump"}),
        ("stale", 409, {"detail": "stale expected_version", "current_version": 3}),
        ("down", 503, {"detail": "event store unreachable"}),
    ],
)
async def test_service_errors_map_to_their_status(
    client: AsyncTestClient[Any],
    auth: dict[str, str],
    kind: str,
    status: int,
    body: dict[str, Any],
) -> None:
    response = await client.get(f"/api/v1/errors/{kind}", headers=auth)
    assert response.status_code == status
    assert response.json() == body


async def test_a_websocket_without_a_token_is_accepted_then_closed_4401(
    client: AsyncTestClient[Any],
) -> None:
    with (
        await client.websocket_connect("/ws/whoami") as session,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        session.receive_json(timeout=5)
    assert closed.value.code == 4401


async def test_a_websocket_with_a_bad_token_is_closed_4401(client: AsyncTestClient[Any]) -> None:
    with (
        await client.websocket_connect("/ws/whoami", params={"token": "garbage"}) as session,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        session.receive_json(timeout=5)
    assert closed.value.code == 4401


async def test_a_websocket_with_a_query_token_knows_its_caller(
    client: AsyncTestClient[Any],
) -> None:
    token = mint_token(SECRET, "acme", "alice")
    with await client.websocket_connect("/ws/whoami", params={"token": token}) as session:
        assert session.receive_json(timeout=5) == {"tenant": "acme", "sub": "alice"}


async def test_a_websocket_with_a_bearer_header_knows_its_caller(
    client: AsyncTestClient[Any], auth: dict[str, str]
) -> None:
    with await client.websocket_connect("/ws/whoami", headers=auth) as session:
        assert session.receive_json(timeout=5) == {"tenant": "acme", "sub": "alice"}


async def test_app_wide_dependencies_reach_the_routes(auth: dict[str, str]) -> None:
    @get("/api/v1/greeter")
    async def greeter(greeting: NamedDependency[str]) -> dict[str, str]:
        return {"greeting": greeting}

    app = create_app(
        Settings(jwt_secret=SECRET, jwt_secret_is_dev=False),
        route_handlers=[greeter],
        dependencies={"greeting": Provide(lambda: "hi", use_cache=True, sync_to_thread=False)},
    )
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/greeter", headers=auth)
    assert response.json() == {"greeting": "hi"}
