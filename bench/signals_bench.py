"""What signals cost: `python -m bench.signals_bench [--parked N] [--signals N] [DATABASE_URL ...]`.

For each store:
- the memory of N executions (default 10,000) parked on a `signal` element with a
  timeout (its durable timer in the engine's heap), beside the same on a `delay`, each
  in a fresh process of its own: the growth of the resident set (as engine_bench
  measures, there after other work has grown the heap already, here from cold) and
  of the live Python heap (tracemalloc, started just before);
- signal → completed: the time of each `POST …/signals/{name}`'s work (the use case:
  the schema checked, the signal recorded with the element taking it and the end of
  the execution, in one commit), one after the other, p50 and p99; and the same for
  50 signals at once (each signal's own latency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

import psycopg

from bench.engine_bench import _rss_mb, parked
from bench.postgres import drop_schema
from infra.settings import Settings
from services.bootstrap import Loom
from services.roles.heap import settle_heap

TENANT = "signalbench"
SCHEMA = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}


def waiting(name: str) -> dict[str, Any]:
    elements = [
        {"key": "start", "type": "trigger"},
        {
            "key": "approve",
            "type": "signal",
            "params": {"name": "approval", "timeout_s": 3600, "schema": SCHEMA},
        },
        {"key": "done", "type": "end"},
    ]
    connections = [
        {"source": "start", "target": "approve"},
        {"source": "approve", "target": "done"},
    ]
    return {
        "project": "Bench",
        "app": "Signals",
        "name": name,
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


async def _park(loom: Loom, process_id: str, count: int) -> list[str]:
    ids: list[str] = []
    for offset in range(0, count, 500):
        started = await asyncio.gather(
            *(
                loom.executions.start(TENANT, "bench", process_id, None, {"i": i})
                for i in range(offset, min(offset + 500, count))
            )
        )
        ids += [s.execution_id for s in started]
    return ids


async def _parked_memory(
    database_url: str, kind: str, count: int, traced: bool
) -> dict[str, float]:
    loom = await _open(database_url)
    try:
        definition = waiting("parked") if kind == "signal" else parked()
        saved = await loom.processes.save(TENANT, "bench", definition)
        gc.collect()
        before = _rss_mb()
        if traced:  # its own bookkeeping grows the resident set: measured apart
            tracemalloc.start()
        began = time.perf_counter()
        await _park(loom, saved["process_id"], count)
        elapsed = time.perf_counter() - began
        await loom.projector.settled()
        gc.collect()
        if traced:
            return {"live": tracemalloc.get_traced_memory()[0] / 2**20}
        return {"rss": _rss_mb() - before, "s": elapsed}
    finally:
        await loom.stop()


def _parked_apart(database_url: str, kind: str, count: int, traced: bool) -> dict[str, float]:
    """`_parked_memory` in a fresh process, so neither kind inherits the other's heap."""
    argv = [sys.executable, "-m", "bench.signals_bench", "--one", kind, "--parked", str(count)]
    if traced:
        argv.append("--traced")
    done = subprocess.run(
        [*argv, database_url], capture_output=True, text=True, check=True, timeout=600
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


async def _signal(loom: Loom, execution_id: str) -> float:
    began = time.perf_counter()
    sent = await loom.signals.send(TENANT, "bench", execution_id, "approval", {"ok": True})
    took = time.perf_counter() - began
    assert sent.status == "completed", sent
    return took * 1000


async def _latencies(loom: Loom, count: int, at_once: int) -> list[float]:
    saved = await loom.processes.save(TENANT, "bench", waiting(f"latency-{at_once}"))
    ids = await _park(loom, saved["process_id"], count)
    await _signal(loom, ids.pop())  # warm: the validator compiled, the caches filled
    took: list[float] = []
    for offset in range(0, len(ids), at_once):
        took += await asyncio.gather(*(_signal(loom, i) for i in ids[offset : offset + at_once]))
    return took


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


async def _open(database_url: str) -> Loom:
    # No tenant limits: the bench parks more than the 10,000 running a tenant may have.
    env = {
        "LOOM_TENANT_MAX_RUNNING": "0",
        "LOOM_TENANT_STARTS_PER_S": "0",
        "LOOM_LOG_LEVEL": "warning",
    }
    loom = Loom(Settings.from_env({"LOOM_DATABASE_URL": database_url, **env}))
    await loom.start()
    settle_heap()  # as `loom serve` does once started
    return loom


def memory_figures(database_url: str, count: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    for kind in ("signal", "delay"):
        url = _fresh(database_url, f"parked_{kind}")
        measured = _parked_apart(url, kind, count, traced=False)
        figures[f"{count} parked on a {kind}, resident set grew: MB"] = measured["rss"]
        figures[f"{count} parked on a {kind}, started in: s"] = measured["s"]
        url = _fresh(database_url, f"traced_{kind}")
        measured = _parked_apart(url, kind, count, traced=True)
        figures[f"{count} parked on a {kind}, live Python heap grew: MB"] = measured["live"]
    return figures


async def run(database_url: str, signals: int) -> dict[str, float]:
    loom = await _open(database_url)
    figures: dict[str, float] = {}
    try:
        for at_once in (1, 50):
            took = await _latencies(loom, signals, at_once)
            label = "one at a time" if at_once == 1 else f"{at_once} at once"
            figures[f"signal -> completed, {label}: p50 ms"] = _p(took, 50)
            figures[f"signal -> completed, {label}: p99 ms"] = _p(took, 99)
        figures["inbox, 500 of 2,000 waiting (GET /signals's read): ms"] = await _inbox_ms(loom)
    finally:
        await loom.stop()
    return figures


async def _inbox_ms(loom: Loom) -> float:
    saved = await loom.processes.save(TENANT, "bench", waiting("inbox"))
    await _park(loom, saved["process_id"], 2000)
    await loom.projector.settled()
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        waits = await loom.signals.waiting(TENANT, None, 500)
        best = min(best, time.perf_counter() - began)
    assert len(waits) == 500, len(waits)
    return best * 1000


def print_figures(title: str, figures: dict[str, float]) -> None:
    print(f"\n== signals on {title}")
    for name, value in figures.items():
        print(f"  {name:<62} {value:>12,.1f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.signals_bench")
    parser.add_argument("--parked", type=int, default=10_000)
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--one", choices=("signal", "delay"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*")
    args = parser.parse_args(argv)
    if args.one:  # a fresh process measuring one kind of parked execution
        measured = _parked_memory(args.urls[0], args.one, args.parked, args.traced)
        print(json.dumps(asyncio.run(measured)))
        return
    for url in args.urls or [f"sqlite:///{tempfile.mkdtemp()}/signals.db"]:
        try:
            figures = memory_figures(url, args.parked)
            figures |= asyncio.run(run(_fresh(url, "latency"), args.signals))
        finally:
            for schema in _SCHEMAS:
                with contextlib.suppress(psycopg.OperationalError):
                    drop_schema(url, schema)
            _SCHEMAS.clear()
        print_figures(url.split("?")[0], figures)


_SCHEMAS: list[str] = []


def _fresh(url: str, name: str) -> str:
    """A store of its own per measurement: a new SQLite file, or a new PostgreSQL schema."""
    if url.startswith("sqlite:"):
        return f"sqlite:///{tempfile.mkdtemp()}/{name}.db"
    _SCHEMAS.append(f"loombench_{name}_{secrets.token_hex(4)}")
    return f"{url}{'&' if '?' in url else '?'}schema={_SCHEMAS[-1]}"


if __name__ == "__main__":
    main(sys.argv[1:])
