"""The process and project lists: `python -m bench.lists_bench [--processes N] [DATABASE_URL]`.

A tenant with N processes in 10 projects, each saved 3 times, then
GET /processes and GET /projects answered over the app (in-process ASGI, so the
figure is the server's work, not a client's): p50 and p99 of 50 reads each, and
the time of a save followed at once by a list that shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from litestar.testing import AsyncTestClient

from infra.auth import mint_token
from infra.logging import configure_logging
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.support import contract_example

SECRET = "lists-bench-secret-of-at-least-32-bytes!"
HEADERS = {"Authorization": f"Bearer {mint_token(SECRET, 'listsbench', 'bench')}"}
READS = 50


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def _timed(client: AsyncTestClient[Any], path: str) -> list[float]:
    samples = []
    for _ in range(READS):
        began = time.perf_counter()
        response = await client.get(path, headers=HEADERS)
        samples.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
    return samples


async def run(url: str, processes: int) -> dict[str, str]:
    settings = Settings.from_env({"LOOM_DATABASE_URL": url, "LOOM_JWT_SECRET": SECRET})
    app = web_app(Loom(settings))
    async with AsyncTestClient(app=app) as client:
        for i in range(processes):
            body = contract_example(project=f"P{i % 10}", app="A", name=f"n{i}")
            saved = await client.post("/api/v1/processes", json=body, headers=HEADERS)
            assert saved.status_code == 201, saved.text
            pid = saved.json()["process_id"]
            for version in (1, 2):
                again = await client.put(
                    f"/api/v1/processes/{pid}",
                    json=body | {"expected_version": version},
                    headers=HEADERS,
                )
                assert again.status_code == 200, again.text
        figures = {
            "GET /processes": _ms(await _timed(client, "/api/v1/processes")),
            "GET /projects": _ms(await _timed(client, "/api/v1/projects")),
        }
        samples = []
        for i in range(20):
            body = contract_example(project="Fresh", app="A", name=f"fresh{i}")
            began = time.perf_counter()
            saved = await client.post("/api/v1/processes", json=body, headers=HEADERS)
            listed = await client.get("/api/v1/processes", headers=HEADERS)
            samples.append(time.perf_counter() - began)
            assert saved.json()["process_id"] in {p["process_id"] for p in listed.json()}
        figures["save, then a list showing it"] = _ms(samples)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lists_bench", description=__doc__)
    parser.add_argument("--processes", type=int, default=300)
    parser.add_argument("database_url", nargs="?")
    args = parser.parse_args(argv)
    configure_logging("warning")
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='loom-lists-')}/loom.db"
    print(f"\n== the lists, {args.processes} processes, 3 versions each, in 10 projects")
    for name, figure in asyncio.run(run(url, args.processes)).items():
        print(f"  {name:<32} {figure}")


if __name__ == "__main__":
    main()
