"""`make bench`: every benchmark, on SQLite and on PostgreSQL, figures printed.

PostgreSQL is LOOM_BENCH_DATABASE_URL, else LOOM_TEST_DATABASE_URL, else the
machine's server on 127.0.0.1:5432; each run writes into a throw-away schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile

import psycopg

from bench import (
    api_bench,
    children_bench,
    engine_bench,
    fairness_bench,
    lists_bench,
    live_bench,
    reads_bench,
    replay_bench,
    schedules_bench,
    secrets_bench,
    signals_bench,
    store_bench,
    webhook_bench,
)
from bench.postgres import drop_schema, postgres_url


def main() -> None:
    print("== event store (raw)")
    store_bench.main([])
    workdir = tempfile.mkdtemp(prefix="loom-bench-")
    engine_bench.print_figures(
        "SQLite", asyncio.run(engine_bench.run(f"sqlite:///{workdir}/engine.db"))
    )
    url = postgres_url()
    schema = f"loombench_{secrets.token_hex(4)}"
    try:
        figures = asyncio.run(engine_bench.run(f"{url}?schema={schema}", parked_count=10_000))
        engine_bench.print_figures("PostgreSQL", figures)
    except Exception as exc:  # the bench reports an absent server, it doesn't fail on it
        print(f"\nPostgreSQL: unavailable ({exc})")
    finally:
        with contextlib.suppress(psycopg.OperationalError):
            drop_schema(url, schema)
    _replay_tooling(workdir, url)
    nats_url = os.environ.get("LOOM_BENCH_NATS_URL") or os.environ.get("LOOM_TEST_NATS_URL")
    live_bench.main(["--postgres", url, "--nats", nats_url or "nats://127.0.0.1:4222"])
    api_bench.main(["--client", "raw", "--postgres", url])
    fairness_bench.main([])
    lists_bench.main([])
    secrets_bench.main([])
    webhook_bench.main([])
    signals_bench.main([f"sqlite:///{workdir}/signals.db", url])
    schedules_bench.main(["--postgres", url])
    children_bench.main([f"sqlite:///{workdir}/children.db", url])
    reads_bench.main([f"sqlite:///{workdir}/reads.db", url])


def _replay_tooling(workdir: str, url: str) -> None:
    replay_bench.print_seal_cost()
    sqlite = f"sqlite:///{workdir}/replay.db"
    replay_bench.print_figures("SQLite", asyncio.run(replay_bench.run(sqlite)))
    schema = f"loombench_{secrets.token_hex(4)}"
    try:
        figures = asyncio.run(replay_bench.run(f"{url}?schema={schema}"))
        replay_bench.print_figures("PostgreSQL", figures)
    except Exception as exc:  # as above: an absent server is reported
        print(f"\nPostgreSQL: unavailable ({exc})")
    finally:
        with contextlib.suppress(psycopg.OperationalError):
            drop_schema(url, schema)


if __name__ == "__main__":
    main()
