"""The distributed mode as real processes: api, engines, projector and gateway on PostgreSQL
and NATS JetStream, driven over HTTP and watched over the WebSocket.

One test walks through the faults in turn (each bounded): executions shared by two
engines; an engine killed while its effect is in flight (another takes the
execution over after ack_wait and performs the effect again); the gateway killed
under a watching client (which reconnects and gets a fresh snapshot).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from infra.auth import mint_token
from tests.nats_support import (
    delete_streams,
    end_process,
    free_port,
    nats_server_url,
    spawn_role,
    unique_nats_url,
)
from tests.support import SECRETS_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.nats, pytest.mark.postgres]

SECRET = secrets.token_hex(16)
TENANT = "acme"


class _Target(BaseHTTPRequestHandler):
    """The outside world the http elements call: /fast answers at once, /slow takes its time
    on its first call only."""

    calls: dict[str, int] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        count = _Target.calls[self.path] = _Target.calls.get(self.path, 0) + 1
        if self.path == "/slow" and count == 1:
            time.sleep(4)
        body = json.dumps({"path": self.path, "call": count}).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the engine that asked is gone

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    _Target.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class Cluster:
    """Loom's roles as processes, each with its log in `workdir`."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def spawn(self, name: str, role: str, port: int | None = None) -> None:
        env = dict(self.env)
        if port is not None:
            env["LOOM_PORT"] = str(port)
            self.ports[name] = port
        self.processes[name] = spawn_role(role, env, self.workdir / f"{name}.log")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def kill(self, name: str) -> None:
        end_process(self.processes[name], kill=True)

    async def healthy(self, *names: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as client:
            for name in names:
                while True:
                    if self.processes[name].poll() is not None:
                        raise AssertionError(f"{name} exited:\n{self.log(name)}")
                    try:
                        if (await client.get(self.url(name) + "/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{name} not healthy:\n{self.log(name)}")
                    await asyncio.sleep(0.1)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for process in self.processes.values():
            end_process(process)


@pytest.fixture
async def cluster(
    postgres_url: str, postgres_schema: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    server = nats_server_url()
    nats_url, prefix = unique_nats_url(server, ack_wait=2)
    database = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"
    cluster = Cluster(
        tmp_path,
        {
            "LOOM_DATABASE_URL": database,
            "LOOM_NATS_URL": nats_url,
            "LOOM_SECRETS_KEY": SECRETS_KEY,
            "LOOM_JWT_SECRET": SECRET,
            "LOOM_HOST": "127.0.0.1",
            "LOOM_HTTP_ALLOW": "127.0.0.1",
        },
    )
    try:
        yield cluster
    finally:
        cluster.stop()
        await delete_streams(server, prefix)


def process(name: str, middle: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["start", *(e["key"] for e in middle), "done"]
    elements = [{"key": "start", "type": "trigger"}, *middle, {"key": "done", "type": "end"}]
    return {
        "project": "Distributed",
        "app": "E2E",
        "name": name,
        "threads": [
            {
                "key": "main",
                "elements": elements,
                "connections": [{"source": a, "target": b} for a, b in itertools.pairwise(keys)],
            }
        ],
    }


async def watch(url: str, timeout: float = 30) -> tuple[list[dict[str, Any]], int | None]:
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout), connect(url) as ws:
        try:
            async for raw in ws:
                messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
    return messages, ws.close_code


def assert_live(messages: list[dict[str, Any]]) -> None:
    """A snapshot, then every later seq once and in order, ending with the completion."""
    assert messages[0]["type"] == "snapshot"
    seqs = [m["seq"] for m in messages[1:]]
    position = messages[0]["status"]["position"]
    assert seqs == list(range(position + 1, position + 1 + len(seqs)))
    assert messages[-1]["type"] == "ExecutionCompleted"


async def test_api_engines_projector_and_gateway_as_processes_run_and_stream_executions(
    cluster: Cluster, target: str
) -> None:
    api_port, gateway_port = free_port(), free_port()
    cluster.spawn("api", "api", api_port)
    cluster.spawn("gateway", "gateway", gateway_port)
    cluster.spawn("projector", "projector")
    cluster.spawn("engine-1", "engine")
    cluster.spawn("engine-2", "engine")
    await cluster.healthy("api", "gateway")
    token = mint_token(SECRET, TENANT, "e2e")
    api = httpx.AsyncClient(
        base_url=cluster.url("api"), headers={"Authorization": f"Bearer {token}"}, timeout=10
    )

    def socket(execution_id: str) -> str:
        return f"ws://127.0.0.1:{gateway_port}/ws/executions/{execution_id}?token={token}"

    async def run(definition: dict[str, Any], count: int = 1) -> list[str]:
        saved = (await api.post("/api/v1/processes", json=definition)).json()
        ids = []
        for i in range(count):
            body = {"process_id": saved["process_id"], "input": {"n": i}}
            answer = await api.post("/api/v1/executions", json=body)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["execution_id"])
        return ids

    async def status(execution_id: str) -> dict[str, Any]:
        return dict((await api.get(f"/api/v1/executions/{execution_id}/status")).json())

    try:
        # 1. Executions with an effect and a timer, shared by two engines, watched live.
        fast = {
            "key": "call",
            "type": "http",
            "params": {"method": "POST", "url": target + "/fast"},
        }
        wait = {"key": "wait", "type": "delay", "params": {"seconds": 0.3}}
        shape = {
            "key": "shape",
            "type": "transform",
            "params": {"output": {"n": "execution.input.n"}},
        }
        ids = await run(process("effect and timer", [fast, wait, shape]), 8)
        for messages, code in await asyncio.gather(*(watch(socket(i)) for i in ids)):
            assert code == 1000
            assert_live(messages)
        for i, execution_id in enumerate(ids):
            for _ in range(100):  # the read model (the polling fallback) follows
                doc = await status(execution_id)
                if doc["status"] == "completed":
                    break
                await asyncio.sleep(0.1)
            assert doc["output"] == {"done": {"n": i}}, doc

        # 2. The engine performing an effect dies: another takes the execution over.
        cluster.kill("engine-2")
        slow = {
            "key": "call",
            "type": "http",
            "params": {"method": "POST", "url": target + "/slow", "timeout_s": 30},
        }
        [taken_over] = await run(process("slow effect", [slow]))
        watcher = asyncio.create_task(watch(socket(taken_over), timeout=60))
        for _ in range(200):
            if _Target.calls.get("/slow"):
                break
            await asyncio.sleep(0.05)
        assert _Target.calls.get("/slow") == 1, "engine-1 is performing the effect"
        cluster.kill("engine-1")
        cluster.spawn("engine-3", "engine")
        messages, code = await watcher
        assert code == 1000
        assert_live(messages)
        assert _Target.calls["/slow"] == 2, "performed again by engine-3 (at least once)"
        history = (await api.get(f"/api/v1/executions/{taken_over}/events")).json()
        completions = [e for e in history if e["type"] == "NodeCompleted"]
        assert [e["element"] for e in completions] == ["start", "call", "done"]

        # 3. The gateway dies under a client: it reconnects and gets a fresh snapshot.
        long_wait = {"key": "wait", "type": "delay", "params": {"seconds": 4}}
        [waiting] = await run(process("long wait", [long_wait]))
        async with connect(socket(waiting)) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "snapshot"
            cluster.kill("gateway")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        cluster.spawn("gateway-2", "gateway", gateway_port)
        await cluster.healthy("gateway-2")
        messages, code = await watch(socket(waiting))
        assert code == 1000
        assert messages[0]["type"] == "snapshot"
        if len(messages) > 1:  # else the snapshot itself showed the end
            assert_live(messages)
        assert (await status(waiting))["status"] in ("running", "completed")
    finally:
        await api.aclose()


async def test_api_and_gateway_in_one_process_serve_the_studio_and_its_websocket(
    cluster: Cluster, target: str
) -> None:
    port = free_port()
    cluster.spawn("front", "api,gateway", port)  # what the Studio needs, from one origin
    cluster.spawn("back", "engine,projector")
    await cluster.healthy("front")
    token = mint_token(SECRET, TENANT, "e2e")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=cluster.url("front"), headers=headers, timeout=10) as api:
        assert (await api.get("/studio", follow_redirects=True)).status_code == 200
        # A slow call keeps it running while the socket opens: the events stream live.
        slow = target + "/slow"
        call = {"key": "call", "type": "http", "params": {"method": "POST", "url": slow}}
        saved = (await api.post("/api/v1/processes", json=process("front", [call]))).json()
        body = {"process_id": saved["process_id"], "input": {}}
        started = await api.post("/api/v1/executions", json=body)
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        url = f"ws://127.0.0.1:{port}/ws/executions/{execution_id}?token={token}"
        messages, code = await watch(url)
    assert code == 1000
    assert_live(messages)
    assert _Target.calls == {"/slow": 1}  # performed by the engine in the other process
    assert "roles started" in cluster.log("back")
