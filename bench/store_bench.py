"""Event store throughput: `python -m bench.store_bench [DATABASE_URL ...]`.

Measures one-event appends per second, events per second in 100-event
appends, and the time to read and decode a 10,000-event stream. On
PostgreSQL it writes into a throw-away schema and drops it afterwards.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import psycopg

from bench.postgres import drop_schema
from domain.events import NodeCompleted
from domain.ports import Append, EventStore, StoreUnavailable
from infra.store import PostgresEventStore, open_event_store
from infra.store.postgres import parse_postgres_url

TENANT = "bench"


def _event(i: int) -> NodeCompleted:
    return NodeCompleted(
        at="2025-01-01T00:00:00.000000Z",
        actor="user-42",
        element=f"element-{i % 20}",
        output={"status": 200, "body": {"id": i, "name": "lead", "score": i * 2.5}},
        attempt=1,
    )


def _per_second(count: int, func: Callable[[], None]) -> float:
    started = time.perf_counter()
    func()
    return count / (time.perf_counter() - started)


def measure(
    store: EventStore,
    *,
    one_event_appends: int = 1000,
    batches: int = 50,
    stream_events: int = 10_000,
) -> dict[str, float]:
    """Run the three measurements against an open store."""
    streams = [uuid.uuid4() for _ in range(10)]

    def single_appends() -> None:
        # Round robin over a few growing streams, like an engine writing executions.
        for i in range(one_event_appends):
            store.append(TENANT, [Append(streams[i % 10], i // 10, [_event(i)])])

    def batch_appends() -> None:
        for _ in range(batches):
            store.append(TENANT, [Append(uuid.uuid4(), 0, [_event(j) for j in range(100)])])

    big = uuid.uuid4()
    for start in range(0, stream_events, 1000):
        store.append(TENANT, [Append(big, start, [_event(j) for j in range(start, start + 1000)])])
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        read = store.read(TENANT, big)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(read) == stream_events
    return {
        "one_event_appends_per_s": _per_second(one_event_appends, single_appends),
        "batched_events_per_s": _per_second(batches * 100, batch_appends),
        "read_10k_ms_min": min(timings),
        "read_10k_ms_median": statistics.median(timings),
    }


def run(database_url: str) -> dict[str, float]:
    """Measure the store at `database_url` (a PostgreSQL one in a fresh schema)."""
    if database_url.startswith("sqlite"):
        store = open_event_store(database_url)
        try:
            return measure(store)
        finally:
            store.close()
    params, _ = parse_postgres_url(database_url)
    schema = f"loombench_{secrets.token_hex(4)}"
    store = PostgresEventStore(params, schema=schema)
    try:
        return measure(store, one_event_appends=500)
    finally:
        store.close()
        drop_schema(database_url, schema)


def main(urls: list[str]) -> None:
    if not urls:
        workdir = tempfile.mkdtemp(prefix="loom-bench-")
        urls = [
            f"sqlite:///{workdir}/bench.db",
            os.environ.get("LOOM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        ]
    for url in urls:
        kind = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        try:
            figures = run(url)
        except (StoreUnavailable, psycopg.OperationalError) as error:
            print(f"{kind}: unavailable ({error})")
            continue
        print(
            f"{kind:<10}  one-event appends: {figures['one_event_appends_per_s']:8.0f}/s   "
            f"100-event appends: {figures['batched_events_per_s']:8.0f} events/s   "
            f"read+decode 10k: {figures['read_10k_ms_min']:5.1f} ms "
            f"(median {figures['read_10k_ms_median']:.1f})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
