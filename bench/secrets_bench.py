"""What secrets cost an http call: `python -m bench.secrets_bench [--calls N] [DATABASE_URL]`.

Two figures, each beside the same work without a secret:
- the engine's part of one call (`Effects.perform` against a requester that answers at
  once, so no network): reading the tenant's secrets (one read of what changed since
  the last, the data key cached), putting the values in, and redacting the answer;
- whole executions, trigger → http (a loopback server) → end, started one after the
  other through the engine: executions per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from domain.expressions import Scope, compile_value, render_value
from domain.secrets import seal
from infra.logging import configure_logging
from infra.secret_keys import new_master_key_text
from infra.settings import Settings
from services.bootstrap import Loom
from services.roles.engine.effects import Effects
from services.usecases.secrets import SecretIn

TENANT = "secretsbench"


class _Answers:
    async def request(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        return {"status": 200, "headers": {"x-echo": request["headers"]["Authorization"]}}

    async def invoke(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        raise NotImplementedError


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


async def _per_call(loom: Loom, calls: int) -> dict[str, float]:
    effects = Effects(_Answers(), _Answers(), loom.secrets)
    figures = {}
    for label, header in (("without", "Bearer plain"), ("with", "Bearer {{ secrets.KEY }}")):
        template = compile_value(
            {"url": "http://x/", "headers": {"Authorization": header}}, secrets=True
        )
        request, slots = seal(render_value(template, Scope(None, None, {})))
        await effects.perform(TENANT, "http", request, None, slots)  # warm: key unwrapped
        began = time.perf_counter()
        for _ in range(calls):
            await effects.perform(TENANT, "http", request, None, slots)
        figures[label] = (time.perf_counter() - began) / calls * 1e6
    return figures


async def _executions(loom: Loom, url: str, count: int) -> dict[str, float]:
    figures = {}
    for label, header in (("without", "Bearer plain"), ("with", "Bearer {{ secrets.KEY }}")):
        saved = await loom.processes.save(
            TENANT,
            "bench",
            {
                "project": "Bench",
                "app": "Secrets",
                "name": label,
                "threads": [
                    {
                        "key": "main",
                        "elements": [
                            {"key": "start", "type": "trigger"},
                            {
                                "key": "call",
                                "type": "http",
                                "params": {"url": f"{url}/", "headers": {"Authorization": header}},
                            },
                            {"key": "done", "type": "end"},
                        ],
                        "connections": [
                            {"source": "start", "target": "call"},
                            {"source": "call", "target": "done"},
                        ],
                    }
                ],
            },
        )
        process = str(saved["process_id"])
        began = time.perf_counter()
        for _ in range(count):
            started = await loom.executions.start(TENANT, "bench", process, None, {}, None, None)
            while (await loom.executions.status(TENANT, started.execution_id)).status not in (
                "completed",
                "failed",
            ):
                await asyncio.sleep(0.001)
        figures[label] = count / (time.perf_counter() - began)
    return figures


async def run(database_url: str, calls: int) -> dict[str, dict[str, float]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {
        "LOOM_DATABASE_URL": database_url,
        "LOOM_HTTP_ALLOW": "127.0.0.1",
        "LOOM_SECRETS_KEY": new_master_key_text(),
    }
    loom = Loom(Settings.from_env(env))
    await loom.start()
    try:
        await loom.secrets.create(TENANT, "bench", SecretIn(name="KEY", value="k" * 40))
        return {
            "engine µs per call": await _per_call(loom, calls),
            "executions/s (loopback http)": await _executions(loom, url, calls // 10),
        }
    finally:
        await loom.stop()
        server.shutdown()


def print_figures(label: str, figures: dict[str, dict[str, float]]) -> None:
    print(f"\n== secrets per http call ({label})")
    for what, pair in figures.items():
        print(f"  {what:<30} without {pair['without']:8.1f}   with a secret {pair['with']:8.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.secrets_bench", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("database_url", nargs="?")
    args = parser.parse_args(argv)
    configure_logging("warning")
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='loom-bench-')}/secrets.db"
    print_figures(
        "SQLite" if url.startswith("sqlite") else "PostgreSQL", asyncio.run(run(url, args.calls))
    )


if __name__ == "__main__":
    main()
