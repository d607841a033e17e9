"""The HTTP edge against a hostile client, over a real uvicorn and real sockets.

Each test reproduces a finding of issue 13: a partial request held open, huge
headers, a chunked body read whole before its 413, a 413 that does not say the
limit, a non-JSON body parsed as JSON, 401s logged with status 0, a client gone
mid-body logged as a 500, and a WebSocket outliving its token.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn
from litestar import get, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from structlog.testing import LogCapture
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from infra.auth import mint_token
from infra.http_server import EdgeLimits, server_config
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.roles.api.app import create_app
from tests.support import SECRET

AUTH = f"Bearer {mint_token(SECRET, 'acme', 'alice')}"
LIMITS = EdgeLimits(header_timeout_s=1.0, body_timeout_s=1.0, max_header_bytes=8 * 1024)


class Greeting(msgspec.Struct):
    name: str


@post("/api/v1/greetings")
async def greet(data: JSONBody[Greeting]) -> dict[str, str]:
    return {"greeting": f"hello {data.name}"}


@post("/api/v1/anything")
async def anything(data: JSONBody[Any]) -> dict[str, str]:
    return {"type": type(data).__name__}


@post("/api/v1/poke")
async def poke() -> dict[str, str]:
    return {"poked": "yes"}


@get("/api/v1/whoami")
async def whoami() -> dict[str, str]:
    return {"ok": "yes"}


ROUTES = [greet, anything, poke, whoami]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    host: str
    port: int


async def _serve(
    app: Any, limits: EdgeLimits = LIMITS
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    port = _free_port()
    config = server_config(app, host="127.0.0.1", port=port, limits=limits, log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    return server, task


async def _stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 20)


@pytest.fixture
async def served(logs: LogCapture) -> AsyncIterator[Served]:
    app = create_app(Settings(jwt_secret=SECRET, jwt_secret_is_dev=False), route_handlers=ROUTES)
    server, task = await _serve(app)
    yield Served("127.0.0.1", server.config.port)
    await _stop(server, task)


async def _read_to_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    chunks = []
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


# --- read timeouts and the header cap -------------------------------------------------


async def test_a_request_whose_headers_never_end_is_answered_408_and_closed(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: loom\r\nX-Slow: ")
    await writer.drain()
    started = time.monotonic()

    raw = await _read_to_eof(reader)

    elapsed = time.monotonic() - started
    status, body = _status_and_body(raw)
    assert status == 408
    assert "1 s" in body["detail"]
    assert 0.8 <= elapsed < 4, elapsed
    writer.close()


async def test_a_connection_that_never_sends_a_byte_is_closed_at_the_header_deadline(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    assert await _read_to_eof(reader) == b""
    writer.close()


async def test_a_body_that_stops_half_way_is_not_kept_open(
    served: Served, logs: LogCapture
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(
        b"POST /api/v1/anything HTTP/1.1\r\nHost: loom\r\nAuthorization: "
        + AUTH.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        + b'{"a": "0123'
    )
    await writer.drain()

    raw = await _read_to_eof(reader)

    status, body = _status_and_body(raw)
    assert status == 408
    assert "body" in body["detail"]
    entry = await _access_entry(logs, "/api/v1/anything")
    assert entry["status"] == 408
    assert not [e for e in logs.entries if e["event"] == "unhandled_exception"]
    writer.close()


async def test_a_keep_alive_connection_gets_a_fresh_header_deadline_per_request(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: loom\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
    writer.close()


async def test_100_kb_of_headers_are_refused_before_the_app_sees_them(
    served: Served, logs: LogCapture
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    big = b"X-Big: " + b"a" * 100_000 + b"\r\n"
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: loom\r\n" + big + b"\r\n")
        await writer.drain()
    except ConnectionResetError:
        pass  # refused while we were still sending: as good as a 431

    raw = await _read_to_eof(reader)

    if raw:
        status, body = _status_and_body(raw)
        assert status == 431
        assert "8192 bytes" in body["detail"]
    assert not [e for e in logs.entries if e.get("path") == "/health"]
    writer.close()


async def test_headers_under_the_cap_pass(served: Served) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: loom\r\nX-Fine: " + b"a" * 6000 + b"\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


# --- the body limit -------------------------------------------------------------------


async def test_a_10_mb_chunked_body_is_refused_with_413_long_before_it_is_all_sent(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(
        b"POST /api/v1/anything HTTP/1.1\r\nHost: loom\r\nAuthorization: "
        + AUTH.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sent = 0
    sent_when_answered: int | None = None
    first_byte = asyncio.Event()

    async def read_answer() -> bytes:
        nonlocal sent_when_answered
        head = await reader.read(1)
        sent_when_answered = sent
        first_byte.set()
        return head + await _read_to_eof(reader, timeout=20)

    answer = asyncio.create_task(read_answer())
    chunk = b"x" * 65536
    try:
        # Like most clients, this one goes on sending while it can: only the server
        # closing stops it from pushing all 10 MB.
        while sent < 10 * 1024 * 1024:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            await asyncio.sleep(0)  # the server shares this loop: let it read
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server stopped reading and closed: the answer is already here

    status, body = _status_and_body(await answer)

    assert status == 413
    assert body == {"detail": "request body larger than 1 MiB (1048576 bytes)"}
    assert sent_when_answered is not None and sent_when_answered < 4 * 1024 * 1024
    assert sent < 10 * 1024 * 1024, "the server read the whole body"
    writer.close()


async def test_an_announced_oversized_body_is_refused_unread_naming_the_limit(
    served: Served,
) -> None:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(
        b"POST /api/v1/anything HTTP/1.1\r\nHost: loom\r\nAuthorization: "
        + AUTH.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n"
    )
    await writer.drain()

    raw = await _read_to_eof(reader)  # answered and closed without a byte of the body

    status, body = _status_and_body(raw)
    assert status == 413
    assert body == {"detail": "request body larger than 1 MiB (1048576 bytes)"}
    writer.close()


# --- 415, and what the access log says -----------------------------------------------


@pytest.fixture
async def client(logs: LogCapture) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(Settings(jwt_secret=SECRET, jwt_secret_is_dev=False), route_handlers=ROUTES)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_a_415(
    client: AsyncTestClient[Any], content_type: str | None
) -> None:
    headers = {"Authorization": AUTH}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await client.post("/api/v1/greetings", content=b'{"name": "Ada"}', headers=headers)
    assert response.status_code == 415, response.text
    assert "JSON" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"],
)
async def test_json_bodies_of_every_json_type_pass(
    client: AsyncTestClient[Any], content_type: str
) -> None:
    response = await client.post(
        "/api/v1/greetings",
        content=b'{"name": "Ada"}',
        headers={"Authorization": AUTH, "Content-Type": content_type},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"greeting": "hello Ada"}


async def test_requests_without_a_body_are_unaffected(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/api/v1/whoami", headers={"Authorization": AUTH})).status_code == 200
    poked = await client.post("/api/v1/poke", headers={"Authorization": AUTH})
    assert poked.status_code == 201, poked.text


async def test_a_refused_request_is_logged_with_its_401(
    client: AsyncTestClient[Any], logs: LogCapture
) -> None:
    response = await client.get("/api/v1/whoami")
    assert response.status_code == 401
    [entry] = [e for e in logs.entries if e["event"] == "request"]
    assert (entry["path"], entry["status"]) == ("/api/v1/whoami", 401)
    assert entry["request_id"] == response.headers["x-request-id"]


async def test_unknown_routes_are_logged_with_their_404(
    client: AsyncTestClient[Any], logs: LogCapture
) -> None:
    await client.get("/nowhere", headers={"Authorization": AUTH})
    [entry] = [e for e in logs.entries if e["event"] == "request"]
    assert entry["status"] == 404


async def _access_entry(logs: LogCapture, path: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            found = [e for e in logs.entries if e["event"] == "request" and e["path"] == path]
            if found:
                return found[0]
            await asyncio.sleep(0.01)


async def test_a_client_gone_mid_body_is_a_499_in_the_log_not_a_500_with_a_traceback(
    served: Served, logs: LogCapture, caplog: pytest.LogCaptureFixture
) -> None:
    _, writer = await asyncio.open_connection(served.host, served.port)
    writer.write(
        b"POST /api/v1/anything HTTP/1.1\r\nHost: loom\r\nAuthorization: "
        + AUTH.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + b'{"a": "012345'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    entry = await _access_entry(logs, "/api/v1/anything")

    assert entry["status"] == 499
    assert not [e for e in logs.entries if e["event"] == "unhandled_exception"]
    assert "Exception in ASGI application" not in caplog.text


# --- a WebSocket ends with its token --------------------------------------------------


def _waiting_process() -> dict[str, Any]:
    keys = ["start", "wait", "done"]
    return {
        "project": "Live",
        "app": "Sessions",
        "name": "waits",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {"key": "wait", "type": "delay", "params": {"seconds": 60}},
                    {"key": "done", "type": "end"},
                ],
                "connections": [{"source": a, "target": b} for a, b in itertools.pairwise(keys)],
            }
        ],
    }


@pytest.fixture
async def live_loom(tmp_path: Path) -> AsyncIterator[tuple[Loom, int]]:
    settings = Settings.from_env(
        {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/loom.db", "LOOM_JWT_SECRET": SECRET}
    )
    loom = Loom(settings)
    server, task = await _serve(web_app(loom), EdgeLimits())
    yield loom, server.config.port
    await _stop(server, task)


async def test_a_websocket_is_closed_4401_when_its_token_expires(
    live_loom: tuple[Loom, int],
) -> None:
    loom, port = live_loom
    saved = await loom.processes.save("acme", "alice", _waiting_process())
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {})
    token = mint_token(SECRET, "acme", "watcher", ttl_s=2)
    expires_at = json.loads(_b64decode(token.split(".")[1]))["exp"]
    url = f"ws://127.0.0.1:{port}/ws/executions/{started.execution_id}?token={token}"

    messages = []
    async with asyncio.timeout(15), connect(url) as ws:
        try:
            async for raw in ws:  # waits on the close itself
                messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
    closed_at = time.time()

    assert ws.close_code == 4401
    assert ws.close_reason == "token expired"
    assert messages[0]["type"] == "snapshot"
    assert messages[0]["status"]["status"] == "running"  # it was not the end that closed it
    assert expires_at - 0.05 <= closed_at < expires_at + 2


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
