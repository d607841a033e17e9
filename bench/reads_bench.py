"""The cost of reads that agree: `python -m bench.reads_bench [DATABASE_URL ...]`.

In one process a list first waits until the projector has saved everything it
was delivered (skipping its 10 ms linger); a status read from the read model
folds the store's tail past the saved document. Measured on the services (no
HTTP): an execution started and waited on until its status says completed, then
the list of completed ones asked at once, with the wait (as shipped) and without
it (as before), alternating in one run; and the tail read a status pays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from uuid import UUID

import psycopg

from bench.postgres import NO_TENANT_LIMITS, drop_schema, postgres_url
from infra.logging import configure_logging
from infra.settings import Settings
from services.bootstrap import Loom
from tests.harness.processes import one_thread

ROUNDS = 200
CHAIN = one_thread(
    [
        {"key": "double", "type": "transform", "params": {"expression": "input.n * 2"}},
        {"key": "done", "type": "end"},
    ],
    [("start", "double"), ("double", "done")],
)


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def run(url: str) -> dict[str, str]:
    env = {"LOOM_DATABASE_URL": url, **NO_TENANT_LIMITS}
    loom = Loom(Settings.from_env(env))
    await loom.start()
    try:
        executions = loom.executions
        saved = await loom.processes.save("bench", "bench", CHAIN)
        process_id = str(saved["process_id"])
        agree = executions._caught_up  # the bench toggles the design it measures
        waited: list[float] = []
        unwaited: list[float] = []
        missing = {"with the wait": 0, "without": 0}
        ids = []
        for n in range(ROUNDS):
            started = await executions.start("bench", "bench", process_id, None, {"n": n})
            await executions.wait("bench", started.execution_id, 10)
            ids.append(started.execution_id)
            with_wait = n % 2 == 0
            executions._caught_up = agree if with_wait else None
            began = time.perf_counter()
            page = await executions.list("bench", process_id, "completed", 500, None)
            (waited if with_wait else unwaited).append(time.perf_counter() - began)
            if started.execution_id not in {i.execution_id for i in page.items}:
                missing["with the wait" if with_wait else "without"] += 1
        executions._caught_up = agree
        await loom.projector.saved("bench")
        tails = []
        for execution_id in ids[:100]:
            doc = loom.statuses.get("bench", execution_id)
            assert doc is not None
            began = time.perf_counter()
            await asyncio.to_thread(
                loom.store.read, "bench", UUID(execution_id), after=doc.position
            )
            tails.append(time.perf_counter() - began)
        return {
            "list right after a completion, with the wait": _ms(waited),
            "  the same without it (as before)": _ms(unwaited),
            "  completed ones missing from the list": (
                f"{missing['with the wait']} of {len(waited)} with, "
                f"{missing['without']} of {len(unwaited)} without"
            ),
            "a status's tail read past its document": _ms(tails),
        }
    finally:
        await loom.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reads_bench", description=__doc__)
    parser.add_argument("database_urls", nargs="*")
    args = parser.parse_args(argv)
    configure_logging("warning")
    urls = args.database_urls or [
        f"sqlite:///{tempfile.mkdtemp(prefix='loom-reads-')}/loom.db",
        postgres_url(),
    ]
    for url in urls:
        schema = None
        if url.startswith("postgresql"):
            schema = f"loombench_{secrets.token_hex(4)}"
            url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
        name = "PostgreSQL" if schema else "SQLite"
        print(f"\n== reads that agree, {ROUNDS} executions one after the other, {name}")
        try:
            for label, figure in asyncio.run(run(url)).items():
                print(f"  {label:<48} {figure}")
        except Exception as exc:  # an absent server is reported, not a failure
            print(f"  unavailable ({exc})")
        finally:
            if schema is not None:
                with contextlib.suppress(psycopg.OperationalError):
                    drop_schema(url.split("?")[0], schema)


if __name__ == "__main__":
    main()
