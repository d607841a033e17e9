"""The REST API end to end: `python -m bench.api_bench [--seconds S] [--concurrency N]`.

`loom serve all` (what `make run` starts) serves in one OS process; this process
is the load: asyncio, N clients on loopback, each starting a
trigger → transform → end execution with `POST /api/v1/executions` and reading
`GET /api/v1/executions/{id}/status` until it says completed, for S seconds.

The clients speak through httpx (`--client httpx`, the default) or through a
minimal keep-alive HTTP/1.1 client on asyncio streams (`--client raw`): httpx
spends several times the server's CPU per request, so on a small machine its
figure measures httpx as much as Loom; `raw` measures the server.

Figures, on SQLite and on PostgreSQL (a throw-away schema, dropped after):
executions/s started over REST and seen completed, and p50/p99 latency of the
POST, of the status GET and of start → seen completed.

PostgreSQL is `--postgres URL`, else LOOM_BENCH_DATABASE_URL, else
LOOM_TEST_DATABASE_URL, else the machine's server on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg

from bench.postgres import drop_schema, postgres_url
from infra.auth import mint_token

TENANT = "apibench"
SECRET = "api-bench-secret-that-is-long-enough-for-hs256"
TERMINAL = ("completed", "failed", "cancelled")
PROCESS: dict[str, Any] = {
    "project": "Bench",
    "app": "API",
    "name": "trigger-transform-end",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {"key": "double", "type": "transform", "params": {"output": {"v": "input.v * 2"}}},
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "double"},
                {"source": "double", "target": "done"},
            ],
        }
    ],
}


@dataclass
class Figures:
    seconds: float = 0.0
    completed: int = 0
    failed: int = 0
    errors: dict[int | str, int] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    status_ms: list[float] = field(default_factory=list)
    end_to_end_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0

    def error(self, what: int | str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


# --- the server: `loom serve all` in its own process ---------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    base: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time the server has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(database_url: str, workdir: Path) -> Iterator[Server]:
    """Run `loom serve all` on `database_url`; yield it; stop it with Ctrl-C."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    env |= {
        "LOOM_HOST": "127.0.0.1",
        "LOOM_PORT": str(port),
        "LOOM_DATABASE_URL": database_url,
        "LOOM_JWT_SECRET": SECRET,
    }
    log = (workdir / f"serve-{port}.log").open("w")
    loom = Path(sys.executable).parent / "loom"
    server = subprocess.Popen(
        [str(loom), "serve", "all"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, base)
        yield Server(base, server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_healthy(server: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"loom serve all exited with {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("loom serve all never answered /health")


# --- the load: this process ----------------------------------------------------------


class HttpxClient:
    """One shared httpx.AsyncClient (its pool holds a connection per concurrent client)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = await self._client.request(method, path, json=body)
        return response.status_code, response.json()


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams, for one client at a time."""

    def __init__(self, base: str, token: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self._host, self._port = host, int(port)
        self._head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n"
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        payload = b"" if body is None else msgspec.json.encode(body)
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        writer.write(
            f"{method} {path} HTTP/1.1\r\n{self._head}{kind}"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        content = await reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split(" ")[1]), msgspec.json.decode(content)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()


Client = HttpxClient | RawClient


async def _one(client: Client, process_id: str, n: int, figures: Figures) -> None:
    began = time.perf_counter()
    code, started = await client.call(
        "POST", "/api/v1/executions", {"process_id": process_id, "input": {"v": n}}
    )
    figures.post_ms.append((time.perf_counter() - began) * 1000)
    if code != 202:
        figures.error(code)
        return
    while True:
        asked = time.perf_counter()
        code, status = await client.call(
            "GET", f"/api/v1/executions/{started['execution_id']}/status"
        )
        figures.status_ms.append((time.perf_counter() - asked) * 1000)
        if code != 200:
            figures.error(code)
            return
        if status["status"] in TERMINAL:
            break
        await asyncio.sleep(0.005)
    figures.end_to_end_ms.append((time.perf_counter() - began) * 1000)
    if status["status"] == "completed" and status["output"] == {"done": {"v": 2 * n}}:
        figures.completed += 1
    else:
        figures.failed += 1


async def _client(
    client: Client, process_id: str, until: float, worker: int, figures: Figures
) -> None:
    n = worker * 1_000_000
    while time.perf_counter() < until:
        n += 1
        try:
            await _one(client, process_id, n, figures)
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
            figures.error(type(exc).__name__)


async def load(server: Server, seconds: float, concurrency: int, kind: str = "httpx") -> Figures:
    """Drive `concurrency` clients of `kind` for `seconds` against `server`."""
    base = server.base
    token = mint_token(SECRET, TENANT, "bench")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=30
    ) as shared:
        clients: list[Client]
        if kind == "raw":
            clients = [RawClient(base, token) for _ in range(concurrency)]
        else:
            clients = [HttpxClient(shared)] * concurrency
        code, created = await clients[0].call("POST", "/api/v1/processes", PROCESS)
        assert code == 201, created
        process_id = created["process_id"]
        warm = Figures()
        await asyncio.gather(*(_one(c, process_id, i, warm) for i, c in enumerate(clients)))
        figures = Figures()
        cpu_before = server.cpu_seconds()
        began = time.perf_counter()
        until = began + seconds
        await asyncio.gather(
            *(_client(c, process_id, until, w, figures) for w, c in enumerate(clients))
        )
        figures.seconds = time.perf_counter() - began
        figures.server_cpu_s = server.cpu_seconds() - cpu_before
        for client in clients:
            if isinstance(client, RawClient):
                client.close()
    return figures


# --- figures -------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_figures(name: str, figures: Figures, concurrency: int, kind: str) -> None:
    rate = figures.completed / figures.seconds if figures.seconds else 0.0
    print(f"\n{name}: {concurrency} {kind} clients for {figures.seconds:.1f} s")
    print(f"  executions/s (started over REST, seen completed)  {rate:8.0f}")
    if figures.completed:
        per = figures.server_cpu_s / figures.completed * 1000
        print(f"  server CPU per execution (ms)                     {per:8.2f}")
    print(f"  completed {figures.completed}, failed {figures.failed}, errors {figures.errors or 0}")
    for label, values in (
        ("POST /api/v1/executions", figures.post_ms),
        ("GET  .../status", figures.status_ms),
        ("start → seen completed", figures.end_to_end_ms),
    ):
        p50, p99 = _percentile(values, 0.50), _percentile(values, 0.99)
        print(f"  {label:<26} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   (n={len(values)})")


def run(
    name: str, database_url: str, workdir: Path, seconds: float, concurrency: int, kinds: list[str]
) -> None:
    """Serve `database_url` once and load it with each kind of client in turn."""
    with serving(database_url, workdir) as server:
        for kind in kinds:
            print_figures(
                name, asyncio.run(load(server, seconds, concurrency, kind)), concurrency, kind
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: see above)")
    parser.add_argument("--client", choices=["httpx", "raw", "both"], default="both")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)
    kinds = ["httpx", "raw"] if args.client == "both" else [args.client]
    print(f"== REST API end to end: {args.concurrency} clients, trigger → transform → end")
    workdir = Path(tempfile.mkdtemp(prefix="loom-api-bench-"))
    load_args = (workdir, args.seconds, args.concurrency, kinds)
    run("SQLite", f"sqlite:///{workdir}/api.db", *load_args)
    if args.sqlite_only:
        return
    url = postgres_url(args.postgres)
    schema = f"loombench_api_{secrets.token_hex(4)}"
    try:
        run("PostgreSQL", f"{url}{'&' if '?' in url else '?'}schema={schema}", *load_args)
    except Exception as exc:  # the bench reports an absent server, it doesn't fail on it
        print(f"\nPostgreSQL: unavailable ({exc})")
    finally:
        with contextlib.suppress(psycopg.OperationalError):
            drop_schema(url, schema)


if __name__ == "__main__":
    main()
