"""Tick lateness with 10,000 live schedules: `python -m bench.schedules_bench [--seconds S]`.

One embedded Loom on the wall clock (SQLite, and PostgreSQL with --postgres URL).
10,000 live schedules in 500 processes of 20: 100 tick every 5 to 6 s (periods
5.00, 5.01, … s, so their ticks spread out, ~18 a second), the other 9,900 are
daily crons spread over the day's minutes (some of them tick during the run too).
Lateness is the time from a tick to its execution's start committed (the tick's
run of pure elements included). Memory: what a second scheduler keeps after
taking up the 10,000 schedules (tracemalloc), its clock standing still.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import tempfile
import time
import tracemalloc
from typing import Any

from bench.api_bench import _percentile
from infra.settings import Settings
from services.bootstrap import Loom
from services.roles.engine.schedules import Scheduler
from services.usecases.schedules import ScheduleService

TOTAL, PER_PROCESS, TICKING = 10_000, 20, 100


def _process(n: int) -> dict[str, Any]:
    triggers = []
    for k in range(PER_PROCESS):
        i = n * PER_PROCESS + k
        if i < TICKING:
            triggers.append({"key": f"s{k}", "type": "schedule", "every_s": 5 + i * 0.01})
        else:
            minute, hour = i % 60, (i // 60) % 24
            cron = f"{minute} {hour} * * *"
            triggers.append({"key": f"s{k}", "type": "schedule", "cron": cron})
    return {
        "project": "Bench",
        "app": "Schedules",
        "name": f"p{n}",
        "threads": [
            {
                "key": "main",
                "elements": [{"key": "start", "type": "trigger"}, {"key": "done", "type": "end"}],
                "connections": [{"source": "start", "target": "done"}],
            }
        ],
        "triggers": triggers,
    }


async def run(database_url: str, seconds: float) -> dict[str, float]:
    settings = Settings.from_env(
        {
            "LOOM_DATABASE_URL": database_url,
            "LOOM_SECRETS_KEY": "A" * 43 + "=",
            "LOOM_TENANT_STARTS_PER_S": "0",
        }
    )
    loom = Loom(settings)
    await loom.start()
    try:
        begun = time.perf_counter()
        for n in range(TOTAL // PER_PROCESS):
            await loom.processes.save("bench", "bench", _process(n))
        saved_s = time.perf_counter() - begun
        scheduler = loom.scheduler
        assert scheduler is not None
        while scheduler.live < TOTAL:
            await scheduler.poll()
        late_ms: list[float] = []
        service: Any = scheduler._schedules  # the bench times each tick
        fire = service.fire

        async def timed(*args: Any) -> Any:
            trigger = await fire(*args)
            late_ms.append((time.time() - args[-1]) * 1000)
            return trigger

        service.fire = timed
        await asyncio.sleep(seconds)
        service.fire = fire
        await scheduler.close()  # nothing else allocates while the second one is measured
        retained = await _scheduler_memory(loom)
    finally:
        await loom.stop()
    return {
        "saved_s": saved_s,
        "ticks": len(late_ms),
        "p50": _percentile(late_ms, 0.5),
        "p99": _percentile(late_ms, 0.99),
        "max": max(late_ms, default=0.0),
        "memory_mb": retained / 1e6,
    }


async def _scheduler_memory(loom: Loom) -> int:
    """What a second scheduler keeps once it holds every live schedule (its clock stands
    still, so it fires nothing: the figure is its heap, not the executions it starts)."""
    service = ScheduleService(loom.schedule_index, loom.catalog, loom.executions)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    scheduler = Scheduler(service, _Frozen(time.time()), poll_s=3600)
    await scheduler.open()
    await asyncio.sleep(0.1)  # the loop lets go of the rows it read (a finished future)
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert scheduler.live == TOTAL
    await scheduler.close()
    return retained


class _Frozen:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def print_figures(name: str, f: dict[str, float]) -> None:
    print(f"\n== schedules: 10,000 live, {f['ticks']:.0f} ticks timed ({name})")
    print(
        f"  tick lateness p50 {f['p50']:6.1f} ms   p99 {f['p99']:6.1f} ms   max {f['max']:6.1f} ms"
    )
    print(f"  scheduler memory for 10,000 schedules {f['memory_mb']:.2f} MB")
    print(f"  saving them (500 processes of 20) {f['saved_s']:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.schedules_bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throw-away schema is used")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="loom-bench-schedules-")
    print_figures("SQLite", asyncio.run(run(f"sqlite:///{workdir}/loom.db", args.seconds)))
    if args.postgres:
        from bench.postgres import drop_schema

        schema = f"loombench_{secrets.token_hex(4)}"
        try:
            url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
            print_figures("PostgreSQL", asyncio.run(run(url, args.seconds)))
        except Exception as exc:  # an absent server is reported, not a failure
            print(f"\nPostgreSQL: unavailable ({exc})")
        finally:
            drop_schema(args.postgres, schema)


if __name__ == "__main__":
    main()
