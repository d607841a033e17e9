"""What sub-processes cost: `python -m bench.children_bench [--items N] [DATABASE_URL ...]`.

For each store: a `foreach` of N items (default 10,000) over a trigger → transform →
end child, at concurrency 10 (the default) and 100 (the most); children completed per
second, from the parent's start to its end, every child recorded and every end told.
Then the parent's history: its events, its largest event (the store's row), and the
time to replay it (`domain.history.replay`, the recorded child results used, no child
run again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from typing import Any
from uuid import UUID

import msgspec
import psycopg

from bench.postgres import drop_schema
from domain.history.replay import replay
from infra.settings import Settings
from services.bootstrap import Loom

TENANT = "childbench"


def _thread(elements: list[dict[str, Any]], connections: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "key": "main",
        "elements": elements,
        "connections": [{"source": s, "target": t} for s, t in connections],
    }


def child() -> dict[str, Any]:
    elements = [
        {"key": "start", "type": "trigger"},
        {"key": "score", "type": "transform", "params": {"output": {"score": "input.item * 2"}}},
        {"key": "done", "type": "end"},
    ]
    thread = _thread(elements, [("start", "score"), ("score", "done")])
    return {"project": "Bench", "app": "Children", "name": "child", "threads": [thread]}


def parent(child_id: str, concurrency: int) -> dict[str, Any]:
    params = {"items": "input.items", "process_id": child_id, "concurrency": concurrency}
    elements = [
        {"key": "start", "type": "trigger"},
        {"key": "each", "type": "foreach", "params": params},
        {"key": "done", "type": "end"},
    ]
    thread = _thread(elements, [("start", "each"), ("each", "done")])
    return {
        "project": "Bench",
        "app": "Children",
        "name": f"each-{concurrency}",
        "threads": [thread],
    }


async def _open(database_url: str) -> Loom:
    env = {
        "LOOM_TENANT_MAX_RUNNING": "0",
        "LOOM_TENANT_STARTS_PER_S": "0",
        "LOOM_LOG_LEVEL": "warning",
    }
    loom = Loom(Settings.from_env({"LOOM_DATABASE_URL": database_url, **env}))
    await loom.start()
    return loom


async def run(database_url: str, items: int) -> dict[str, float]:
    loom = await _open(database_url)
    figures: dict[str, float] = {}
    try:
        child_id = (await loom.processes.save(TENANT, "bench", child()))["process_id"]
        for concurrency in (10, 100):
            saved = await loom.processes.save(TENANT, "bench", parent(child_id, concurrency))
            began = time.perf_counter()
            out = await loom.executions.start(
                TENANT, "bench", saved["process_id"], None, {"items": list(range(items))}
            )
            status = await loom.executions.wait(TENANT, out.execution_id, 600)
            took = time.perf_counter() - began
            assert status.status == "completed", status.error
            results = status.nodes["each"].output["results"]
            assert len(results) == items and results[-1] == {"done": {"score": 2 * (items - 1)}}
            figures[f"foreach of {items:,}, concurrency {concurrency}: children/s"] = items / took
        figures |= await asyncio.to_thread(_replayed, loom, out.execution_id, saved["process_id"])
    finally:
        await loom.stop()
    return figures


def _replayed(loom: Loom, execution_id: str, process_id: str) -> dict[str, float]:
    history = [r.event for r in loom.store.read(TENANT, UUID(execution_id))]
    process = loom.catalog.load(TENANT, process_id)
    graph = loom.catalog.graph_of(TENANT, process, 1)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        report = replay(execution_id, graph, history)
        best = min(best, time.perf_counter() - began)
        assert report.deterministic, report.divergence
    largest = max(len(msgspec.json.encode(event)) for event in history)
    return {
        "the parent's history: events": len(history),
        "the parent's largest event: KiB": largest / 1024,
        "the parent's replay: ms": best * 1000,
    }


def print_figures(title: str, figures: dict[str, float]) -> None:
    print(f"\n== sub-processes on {title}")
    for name, value in figures.items():
        print(f"  {name:<62} {value:>12,.1f}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.children_bench")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("urls", nargs="*")
    args = parser.parse_args(argv)
    for url in args.urls or [f"sqlite:///{tempfile.mkdtemp()}/children.db"]:
        schema = None
        if url.startswith("postgres"):
            schema = f"loombench_{secrets.token_hex(4)}"
            target = f"{url}{'&' if '?' in url else '?'}schema={schema}"
        else:
            target = url
        try:
            print_figures(url.split("?")[0], asyncio.run(run(target, args.items)))
        except Exception as exc:  # an absent server is reported, not a failure of the bench
            print(f"\n{url.split('?')[0]}: unavailable ({exc})")
        finally:
            if schema is not None:
                with contextlib.suppress(psycopg.OperationalError):
                    drop_schema(url, schema)


if __name__ == "__main__":
    main(sys.argv[1:])
