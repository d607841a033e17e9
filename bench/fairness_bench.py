"""One tenant's dear work against everyone else's: `python -m bench.fairness_bench`.

`loom serve all` on SQLite, loaded from this process by two hostile tenants:
- `dear` runs chains of 20 transforms that each loop inside a loop over 250
  numbers (the dearest expression the budget lets through, ~15 ms each), and
  now and then the finding's 4,500-number version (4.7 s of a frozen server
  before expressions were priced; refused on its price now);
- `long` runs chains of 1,000 cheap transforms back to back (a long run of pure
  elements).

Meanwhile a probe asks `GET /health` every 20 ms, and a bystander tenant starts a
trigger → transform → end execution and reads its status until completed, one
after the other. Figures: p50/p99/max of both, and what the hostile tenants got
done. (The same bench against older code: PYTHONPATH=<that checkout>.)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.api_bench import SECRET, RawClient, Server, _percentile, serving
from infra.auth import mint_token

NESTED = "input.l.all(a, input.l.all(b, true)) ? input : input"
TERMINAL = ("completed", "failed", "cancelled")


def _chain(name: str, length: int, expression: str) -> dict[str, Any]:
    keys = ["start", *(f"t{i}" for i in range(length)), "done"]
    elements: list[dict[str, Any]] = [{"key": "start", "type": "trigger"}]
    elements += [
        {"key": f"t{i}", "type": "transform", "params": {"expression": expression}}
        for i in range(length)
    ]
    elements.append({"key": "done", "type": "end"})
    connections = [{"source": a, "target": b} for a, b in itertools.pairwise(keys)]
    return {
        "project": "Bench",
        "app": "Fairness",
        "name": name,
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


def _client(server: Server, tenant: str) -> RawClient:
    return RawClient(server.base, mint_token(SECRET, tenant, "bench"))


async def _save(client: RawClient, body: dict[str, Any]) -> str:
    code, saved = await client.call("POST", "/api/v1/processes", body)
    assert code == 201, saved
    return str(saved["process_id"])


async def _run_once(client: RawClient, process_id: str, input: Any) -> str:
    code, started = await client.call(
        "POST", "/api/v1/executions", {"process_id": process_id, "input": input}
    )
    assert code == 202, started
    path = f"/api/v1/executions/{started['execution_id']}/status"
    while True:
        code, status = await client.call("GET", path)
        if code == 200 and status["status"] in TERMINAL:
            return str(status["status"])
        await asyncio.sleep(0.01)


async def _hostile(
    client: RawClient, process_id: str, input: Any, until: float, done: list[str]
) -> None:
    while time.monotonic() < until:
        done.append(await _run_once(client, process_id, input))


async def load(server: Server, seconds: float, workloads: frozenset[str]) -> dict[str, Any]:
    dear_client, long_client = _client(server, "dear"), _client(server, "long")
    dear = await _save(dear_client, _chain("dear", 20, NESTED))
    worst = await _save(dear_client, _chain("worst", 1, NESTED))
    long = await _save(long_client, _chain("long", 1000, "input + 1"))
    bystander = _client(server, "bystander")
    simple = await _save(bystander, _chain("simple", 1, "input * 2"))
    probe = RawClient(server.base, "")
    until = time.monotonic() + seconds
    dear_done: list[str] = []
    long_done: list[str] = []
    worst_done: list[str] = []
    hostile = []
    if "dear" in workloads:
        hostile += [
            _hostile(_client(server, "dear"), dear, {"l": list(range(250))}, until, dear_done)
            for _ in range(2)
        ]
    if "long" in workloads:
        hostile += [_hostile(_client(server, "long"), long, 0, until, long_done) for _ in range(2)]
    if "worst" in workloads:
        worst_input = {"l": list(range(4500))}
        hostile.append(_hostile(_client(server, "dear"), worst, worst_input, until, worst_done))
    health_ms: list[float] = []
    bystander_ms: list[float] = []

    async def probe_health() -> None:
        while time.monotonic() < until:
            began = time.perf_counter()
            await probe.call("GET", "/health")
            health_ms.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.02)

    async def bystand() -> None:
        while time.monotonic() < until:
            began = time.perf_counter()
            await _run_once(bystander, simple, 1)
            bystander_ms.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*hostile, probe_health(), bystand())
    return {
        "health_ms": health_ms,
        "bystander_ms": bystander_ms,
        "dear": dear_done,
        "long": long_done,
        "worst": worst_done,
    }


def print_figures(figures: dict[str, Any], seconds: float) -> None:
    print(f"\n== fairness: two hostile tenants for {seconds:.0f} s, a probe and a bystander")
    for label, key in (
        ("GET /health", "health_ms"),
        ("bystander start → seen completed", "bystander_ms"),
    ):
        values = figures[key]
        print(
            f"  {label:<34} p50 {_percentile(values, 0.5):7.1f} ms   "
            f"p99 {_percentile(values, 0.99):7.1f} ms   max {max(values, default=0):7.1f} ms"
            f"   (n={len(values)})"
        )
    for key, what in (
        ("dear", "chains of 20 dear transforms"),
        ("long", "chains of 1,000 cheap transforms"),
        ("worst", "the 4,500-number nested loop"),
    ):
        outcomes = figures[key]
        summary = ", ".join(f"{s} {outcomes.count(s)}" for s in sorted(set(outcomes))) or "none"
        print(f"  {what:<34} {summary}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fairness_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--workloads", default="dear,long,worst", help="hostile workloads, joined by commas"
    )
    args = parser.parse_args(argv)
    workloads = frozenset(args.workloads.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="loom-fairness-bench-"))
    with serving(f"sqlite:///{workdir}/fair.db", workdir) as server:
        print_figures(asyncio.run(load(server, args.seconds, workloads)), args.seconds)


if __name__ == "__main__":
    main()
