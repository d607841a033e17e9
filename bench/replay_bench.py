"""Replay tooling throughput: `python -m bench.replay_bench [DATABASE_URL ...]`.

For each store, through the same code `loom replay` and `loom audit --verify`
run (services.tools): the replay of one 10,000-event execution (read, decode,
re-decide), the hash chain of that execution verified, and `replay --all` over
a tenant of 1,000 executions. Also the hash chain's cost per appended event.
Each figure is the time and the events per second.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from typing import Any

from bench.engine_bench import chain
from bench.postgres import NO_TENANT_LIMITS
from domain.events import NodeCompleted
from infra.settings import Settings
from infra.store import codec
from services.bootstrap import Loom, open_store
from services.tools.audit import verify_chain
from services.tools.history import Histories
from services.tools.replay import replay_one, replay_tenant
from tests.support import contract_example

BIG = "replaybench-big"  # the one 10,000-event execution
MANY = "replaybench-many"  # the 1,000 executions `replay --all` goes through
EXAMPLE = contract_example(project="Bench", app="Bench", name="qualify")


async def _record(loom: Loom, executions: int) -> str:
    """One 10,000-event execution (tenant BIG) and `executions` small ones (tenant MANY)."""
    saved = await loom.processes.save(BIG, "bench", chain(4998))
    big = await loom.executions.start(BIG, "bench", saved["process_id"], None, {"v": 0})
    # A long run of pure elements takes turns with other work: wait for its end.
    while (await loom.executions.status(BIG, big.execution_id)).status == "running":
        await asyncio.sleep(0.01)
    small = await loom.processes.save(MANY, "bench", EXAMPLE)
    for offset in range(0, executions, 200):
        results = await asyncio.gather(
            *(
                loom.executions.start(MANY, "bench", small["process_id"], None, {"amount": i})
                for i in range(offset, min(offset + 200, executions))
            )
        )
        assert all(r.status == "completed" for r in results)
    return big.execution_id


def _best(runs: int, func: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
    return best, result


def _seal_cost_us(count: int = 20_000) -> float:
    event = NodeCompleted(
        at="2026-01-01T00:00:00.000000Z",
        actor="user-42",
        element="element-7",
        output={"status": 200, "body": {"id": 7, "name": "lead", "score": 17.5}},
    )
    _, body = codec.encode(event)
    previous = codec.genesis(uuid.uuid4())

    def seal_all() -> None:
        nonlocal previous
        for _ in range(count):
            _, previous = codec.seal(body, previous)

    seconds, _ = _best(5, seal_all)
    return seconds / count * 1e6


async def run(database_url: str, *, executions: int = 1000) -> dict[str, tuple[float, float]]:
    """Figures as name -> (seconds, events per second)."""
    # The engine measured, not the fairness policy: no per-tenant limits.
    loom = Loom(Settings.from_env({"LOOM_DATABASE_URL": database_url, **NO_TENANT_LIMITS}))
    await loom.start()
    try:
        big = await _record(loom, executions)
        await loom.projector.settled()
    finally:
        await loom.stop()
    store = open_store(Settings.from_env({"LOOM_DATABASE_URL": database_url}), create=False)
    try:
        histories = Histories(store)
        seconds, report = _best(3, lambda: replay_one(histories, BIG, big))
        assert report.deterministic
        figures = {f"replay of one {report.events}-event execution": (seconds, report.events)}
        seconds, chain_report = _best(
            3, lambda: verify_chain(uuid.UUID(big), histories.states(BIG, big))
        )
        assert chain_report.intact
        figures[f"audit --verify of the {chain_report.events}-event chain"] = (
            seconds,
            chain_report.events,
        )
        seconds, tenant = _best(1, lambda: replay_tenant(Histories(store), MANY))
        assert not tenant.failures, tenant.failures[:3]
        figures[f"replay --all over {tenant.executions} executions"] = (seconds, tenant.events)
    finally:
        store.close()
    return {name: (s, events / s) for name, (s, events) in figures.items()}


def print_figures(title: str, figures: dict[str, tuple[float, float]]) -> None:
    print(f"\n== replay tooling on {title}")
    for name, (seconds, rate) in figures.items():
        print(f"  {name:<52} {seconds:8.3f} s {rate:12,.0f} events/s")


def print_seal_cost() -> None:
    print(f"\n== hash chain: sha256 seal of one event: {_seal_cost_us():.2f} µs")


def main(urls: list[str]) -> None:
    print_seal_cost()
    for url in urls:
        print_figures(url.split("?")[0], asyncio.run(run(url)))


if __name__ == "__main__":
    main(sys.argv[1:] or [f"sqlite:///{tempfile.mkdtemp()}/replay.db"])
