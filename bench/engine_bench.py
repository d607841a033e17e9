"""Engine throughput: `python -m bench.engine_bench [DATABASE_URL ...]`.

For each store: elements/s through a chain of 100 transforms and through a
10-wide fan-out/join, run back to back; elements/s with 200 executions in
flight; the time to rebuild and to replay a 10,000-event execution; the
memory of 10,000 executions parked on a delay; and, measured in the same run,
the raw rate at which the store appends one event per transaction.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import resource
import sys
import tempfile
import time
import uuid
from typing import Any

from bench.postgres import NO_TENANT_LIMITS
from domain.events import NodeCompleted
from domain.execution import Execution
from domain.history.replay import replay
from domain.ports import Append
from infra.settings import Settings
from services.bootstrap import Loom
from services.roles.heap import settle_heap

TENANT = "bench"


def chain(n: int) -> dict[str, Any]:
    keys = ["start", *(f"t{i}" for i in range(n)), "done"]
    elements = [{"key": "start", "type": "trigger"}]
    elements += [
        {"key": f"t{i}", "type": "transform", "params": {"output": {"v": "input.v + 1"}}}
        for i in range(n)
    ]
    elements.append({"key": "done", "type": "end"})
    connections = [{"source": a, "target": b} for a, b in itertools.pairwise(keys)]
    return _process(f"chain-{n}", elements, connections)


def fan_out(width: int) -> dict[str, Any]:
    elements = [{"key": "start", "type": "trigger"}, {"key": "join", "type": "join"}]
    elements += [
        {"key": f"b{i}", "type": "transform", "params": {"output": {"v": f"input.v + {i}"}}}
        for i in range(width)
    ]
    elements.append({"key": "done", "type": "end"})
    connections = [{"source": "start", "target": f"b{i}"} for i in range(width)]
    connections += [{"source": f"b{i}", "target": "join"} for i in range(width)]
    connections.append({"source": "join", "target": "done"})
    return _process(f"fan-{width}", elements, connections)


def parked() -> dict[str, Any]:
    elements = [
        {"key": "start", "type": "trigger"},
        {"key": "wait", "type": "delay", "params": {"seconds": 3600}},
        {"key": "done", "type": "end"},
    ]
    connections = [{"source": "start", "target": "wait"}, {"source": "wait", "target": "done"}]
    return _process("parked", elements, connections)


def _process(name: str, elements: list[Any], connections: list[Any]) -> dict[str, Any]:
    return {
        "project": "Bench",
        "app": "Bench",
        "name": name,
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


async def _back_to_back(loom: Loom, definition: dict[str, Any], runs: int) -> float:
    saved = await loom.processes.save(TENANT, "bench", definition)
    elements = sum(len(t["elements"]) for t in definition["threads"])
    await loom.executions.start(TENANT, "bench", saved["process_id"], None, {"v": 0})  # warm
    started = time.perf_counter()
    for i in range(runs):
        result = await loom.executions.start(TENANT, "bench", saved["process_id"], None, {"v": i})
        assert result.status == "completed", result
    return runs * elements / (time.perf_counter() - started)


async def _in_flight(loom: Loom, definition: dict[str, Any], count: int) -> float:
    saved = await loom.processes.save(TENANT, "bench", definition)
    elements = sum(len(t["elements"]) for t in definition["threads"])
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            loom.executions.start(TENANT, "bench", saved["process_id"], None, {"v": i})
            for i in range(count)
        )
    )
    elapsed = time.perf_counter() - started
    assert all(r.status == "completed" for r in results)
    return count * elements / elapsed


async def _replay_10k(loom: Loom) -> tuple[int, float, float]:
    saved = await loom.processes.save(TENANT, "bench", chain(4998))
    result = await loom.executions.start(TENANT, "bench", saved["process_id"], None, {"v": 0})
    # A chain this long runs in slices (pausing for other executions): wait for its end.
    while (await loom.executions.status(TENANT, result.execution_id)).status == "running":
        await asyncio.sleep(0.01)
    stream = uuid.UUID(result.execution_id)
    graph = await loom.catalog.graph(TENANT, saved["process_id"], 1)
    await loom.projector.settled()  # time the replay alone, as `loom replay` runs it
    best_rebuild = best_replay = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        history = loom.store.read(TENANT, stream)
        events = [r.event for r in history]
        Execution.rebuild(result.execution_id, graph, events)
        t1 = time.perf_counter()
        report = replay(result.execution_id, graph, events)
        t2 = time.perf_counter()
        assert report.deterministic
        best_rebuild = min(best_rebuild, t1 - t0)
        best_replay = min(best_replay, (t1 - t0) + (t2 - t1))
    return len(events), best_rebuild * 1000, best_replay * 1000


async def _parked_memory(loom: Loom, count: int) -> tuple[float, float]:
    saved = await loom.processes.save(TENANT, "bench", parked())
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    for offset in range(0, count, 500):
        await asyncio.gather(
            *(
                loom.executions.start(TENANT, "bench", saved["process_id"], None, {"i": i})
                for i in range(offset, min(offset + 500, count))
            )
        )
    elapsed = time.perf_counter() - started
    await loom.projector.settled()
    gc.collect()
    return _rss_mb() - before, elapsed


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _raw_append_rate(loom: Loom, seconds: float = 1.0) -> float:
    event = NodeCompleted(
        at="2026-01-01T00:00:00.000000Z", actor="bench", element="x", output={"v": 1}
    )
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        loom.store.append("rawbench", [Append(uuid.uuid4(), 0, [event])])
        count += 1
    return count / (time.perf_counter() - started)


async def run(database_url: str, *, parked_count: int = 10_000) -> dict[str, float]:
    # The engine measured, not the fairness policy: no per-tenant limits.
    loom = Loom(Settings.from_env({"LOOM_DATABASE_URL": database_url, **NO_TENANT_LIMITS}))
    await loom.start()
    settle_heap()  # as `loom serve` does once started
    figures: dict[str, float] = {}
    try:
        figures["raw one-event appends/s"] = _raw_append_rate(loom)
        figures["chain of 100, back to back: elements/s"] = await _back_to_back(
            loom, chain(100), 40
        )
        figures["10-wide fan-out/join, back to back: elements/s"] = await _back_to_back(
            loom, fan_out(10), 300
        )
        figures["200 in flight (chain of 10): elements/s"] = await _in_flight(loom, chain(10), 200)
        events, rebuild_ms, replay_ms = await _replay_10k(loom)
        figures[f"rebuild {events}-event execution (read+decode+fold): ms"] = rebuild_ms
        figures[f"replay {events}-event execution (rebuild + re-decide): ms"] = replay_ms
        memory, elapsed = await _parked_memory(loom, parked_count)
        figures[f"{parked_count} executions parked on a delay: MB"] = memory
        figures[f"{parked_count} parked executions started in: s"] = elapsed
        figures["raw one-event appends/s (again, after)"] = _raw_append_rate(loom)
    finally:
        await loom.stop()
    return figures


def print_figures(title: str, figures: dict[str, float]) -> None:
    print(f"\n== engine on {title}")
    for name, value in figures.items():
        print(f"  {name:<62} {value:>12,.1f}")


def main(urls: list[str]) -> None:
    for url in urls:
        print_figures(url.split("?")[0], asyncio.run(run(url)))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    main(sys.argv[1:] or [f"sqlite:///{tempfile.mkdtemp()}/bench.db"])
