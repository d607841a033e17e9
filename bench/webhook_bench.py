"""Webhooks that answer with the output: `python -m bench.webhook_bench [--seconds S] [-c N]`.

`loom serve all` in its own process on SQLite; this process is the load: N
keep-alive clients (asyncio streams, as `bench.api_bench --client raw`), each
calling a `respond: "output"` webhook of a trigger → transform → end process and
reading the answer, which the server gives once the execution ends (it waits on
the live feed). Figures: round trips per second, p50/p99, server CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.api_bench import SECRET, TENANT, Figures, RawClient, Server, _percentile, serving
from infra.auth import mint_token

PROCESS: dict[str, Any] = {
    "project": "Bench",
    "app": "Hooks",
    "name": "hook-transform-end",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "start", "type": "trigger"},
                {
                    "key": "double",
                    "type": "transform",
                    "params": {"output": {"v": "input.body.v * 2"}},
                },
                {"key": "done", "type": "end"},
            ],
            "connections": [
                {"source": "start", "target": "double"},
                {"source": "double", "target": "done"},
            ],
        }
    ],
    "triggers": [{"key": "sync", "type": "webhook", "respond": "output"}],
}


async def _client(
    client: RawClient, path: str, until: float, worker: int, figures: Figures
) -> None:
    n = worker * 1_000_000
    while time.perf_counter() < until:
        n += 1
        began = time.perf_counter()
        try:
            code, answer = await client.call("POST", path, {"v": n})
        except (OSError, asyncio.IncompleteReadError) as exc:
            figures.error(type(exc).__name__)
            continue
        figures.end_to_end_ms.append((time.perf_counter() - began) * 1000)
        if code == 200 and answer == {"done": {"v": 2 * n}}:
            figures.completed += 1
        else:
            figures.error(code)


async def load(server: Server, seconds: float, concurrency: int) -> Figures:
    token = mint_token(SECRET, TENANT, "bench")
    clients = [RawClient(server.base, token) for _ in range(concurrency)]
    code, saved = await clients[0].call("POST", "/api/v1/processes", PROCESS)
    assert code == 201, saved
    path = saved["triggers"][0]["url"]
    warm = Figures()
    await asyncio.gather(
        *(_client(c, path, time.perf_counter() + 0.5, i, warm) for i, c in enumerate(clients))
    )
    figures = Figures()
    cpu = server.cpu_seconds()
    began = time.perf_counter()
    await asyncio.gather(
        *(_client(c, path, began + seconds, w, figures) for w, c in enumerate(clients))
    )
    figures.seconds = time.perf_counter() - began
    figures.server_cpu_s = server.cpu_seconds() - cpu
    for client in clients:
        client.close()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="loom-bench-hooks-"))
    with serving(f"sqlite:///{workdir}/loom.db", workdir) as server:
        figures = asyncio.run(load(server, args.seconds, args.concurrency))
    rate = figures.completed / figures.seconds if figures.seconds else 0.0
    p50, p99 = _percentile(figures.end_to_end_ms, 0.5), _percentile(figures.end_to_end_ms, 0.99)
    print(
        f"\n== webhooks, respond: output (SQLite, {args.concurrency} clients, "
        f"{figures.seconds:.0f} s)"
    )
    print(f"  round trips/s {rate:8.0f}   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    if figures.completed:
        print(f"  server CPU per call {figures.server_cpu_s / figures.completed * 1000:.2f} ms")
    print(f"  completed {figures.completed}, errors {figures.errors or 0}")


if __name__ == "__main__":
    main()
