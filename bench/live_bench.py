"""The live path: `python -m bench.live_bench [--nats URL] [--postgres URL]`.

Figures, per mode (embedded: SQLite + in-process bus; NATS: the api and gateway
roles in one process over JetStream, on SQLite and on PostgreSQL):

- latency from an event committed to the store to a WebSocket client receiving
  it, p50/p99, with events falling due at a steady 1,000/s on one execution
  (each commit takes every event due, as the engine's group commit does);
- the same with 100 clients on that execution (fan-out), at 50 events/s;
- events/s the projector folds into the status read model (from the store, as
  a restart's catch-up does, and from a JetStream consumer in the NATS mode).

The bench writes the events itself, as an engine would (so no engine role runs),
and the server runs in this process as `loom serve` would (uvicorn, one event
loop). The clients run in other processes, at most 50 each, so their own work
does not delay the server; both sides stamp times with CLOCK_MONOTONIC, which
processes share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import secrets
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID, uuid4

import psycopg
import uvicorn

from bench.postgres import drop_schema
from domain.events import Event, ExecutionCompleted, ExecutionStarted, NodeCompleted, NodeExecuting
from domain.ports import Append, RecordedEvent
from infra.auth import mint_token
from infra.bus.nats import EventConsumer, NatsClient
from infra.logging import configure_logging
from infra.secret_keys import new_master_key_text
from infra.settings import Settings
from services.bootstrap import ROLES, Loom, web_app
from services.roles.heap import settle_heap
from services.roles.projector.projector import Projector

TENANT = "livebench"
SECRET = "live-bench-secret-long-enough-for-hs256-signing"
AT = "2026-01-01T00:00:00.000000Z"


# --- the clients (another process) ----------------------------------------------------


def _client_process(urls: list[str], conn: Connection) -> None:
    asyncio.run(_clients(urls, conn))


async def _clients(urls: list[str], conn: Connection) -> None:
    from websockets.asyncio.client import connect

    sockets = [await connect(url, max_size=None) for url in urls]
    for ws in sockets:
        json.loads(await ws.recv())  # the snapshot
    conn.send("ready")

    async def read(ws: Any) -> list[tuple[int, int]]:
        received = []
        with contextlib.suppress(Exception):
            async for raw in ws:
                received.append((json.loads(raw)["seq"], time.monotonic_ns()))
        return received

    results = await asyncio.gather(*(read(ws) for ws in sockets))
    conn.send(results)


# --- the server side ------------------------------------------------------------------


async def _serve(loom: Loom) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            web_app(loom),
            host="127.0.0.1",
            port=port,
            log_config=None,
            log_level="warning",
            ws_per_message_deflate=False,  # as `loom serve` runs it
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    settle_heap()  # as `loom serve` does once started
    return server, task, port


async def _commit(loom: Loom, stream: UUID, after: int, events: list[Event]) -> int:
    """Append as the engine does (then publish on the local bus), and stamp the commit."""
    positions = await asyncio.to_thread(loom.store.append, TENANT, [Append(stream, after, events)])
    committed = time.monotonic_ns()
    await loom.bus.publish(
        TENANT,
        [
            RecordedEvent(stream, after + i + 1, e, p)
            for i, (e, p) in enumerate(zip(events, positions, strict=True))
        ],
    )
    return committed


async def latency(
    loom: Loom, port: int, *, rate: float, seconds: float, clients: int
) -> dict[str, float]:
    """Commit-to-client latency at a steady `rate` of events/s for `seconds`."""
    stream = uuid4()
    await _commit(
        loom,
        stream,
        0,
        [ExecutionStarted(at=AT, actor="bench", process_id=str(uuid4()), version=1)],
    )
    token = mint_token(SECRET, TENANT, "bench")
    url = f"ws://127.0.0.1:{port}/ws/executions/{stream}?token={token}"
    # At most 50 clients per process: one Python process reads ~7,000 messages/s.
    spawn = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for first in range(0, clients, 50):
        parent, child = spawn.Pipe()
        share = min(50, clients - first)
        processes.append(
            spawn.Process(target=_client_process, args=([url] * share, child), daemon=True)
        )
        processes[-1].start()
        pipes.append(parent)
    for parent in pipes:
        await asyncio.to_thread(parent.recv)  # every client has its snapshot

    # Events fall due at a steady `rate`; each commit takes all that are due (one when
    # the store keeps up, more when it does not, as the engine's group commit does).
    committed: dict[int, int] = {}
    count, seq, commits = int(rate * seconds), 1, 0
    started = time.monotonic()
    while seq - 1 < count:
        due = min(count, int((time.monotonic() - started) * rate) + 1)
        if due <= seq - 1:
            await asyncio.sleep(started + (seq - 1) / rate - time.monotonic())
            continue
        events = [_step(i) for i in range(seq - 1, due)]
        stamp = await _commit(loom, stream, seq, events)
        committed.update((seq + 1 + j, stamp) for j in range(len(events)))
        seq += len(events)
        commits += 1
    achieved = count / (time.monotonic() - started)
    await _commit(loom, stream, seq, [ExecutionCompleted(at=AT, actor="bench", output={})])
    results = [r for parent in pipes for r in await asyncio.to_thread(parent.recv)]
    for process in processes:
        process.join(10)

    warmup = int(rate * 0.5)
    samples = [
        (received - committed[s]) / 1e6
        for per_client in results
        for s, received in per_client
        if s in committed and s > warmup + 1
    ]
    expected = (count - warmup) * clients
    samples.sort()
    return {
        "events/s achieved": achieved,
        "events per commit (mean)": count / commits,
        "deliveries measured": len(samples),
        "deliveries missing": expected - len(samples),
        "p50 ms": samples[len(samples) // 2],
        "p99 ms": samples[int(len(samples) * 0.99)],
        "max ms": samples[-1],
        "mean ms": statistics.fmean(samples),
    }


def _step(i: int) -> Event:
    if i % 2 == 0:
        return NodeExecuting(at=AT, actor="bench", element=f"n{i}")
    return NodeCompleted(at=AT, actor="bench", element=f"n{i - 1}", output={"i": i})


def _history(executions: int, per_execution: int) -> list[tuple[UUID, list[Event]]]:
    out = []
    for _ in range(executions):
        events: list[Event] = [
            ExecutionStarted(at=AT, actor="bench", process_id=str(uuid4()), version=1)
        ]
        for i in range((per_execution - 2) // 2):
            events += [
                NodeExecuting(at=AT, actor="bench", element=f"n{i}"),
                NodeCompleted(at=AT, actor="bench", element=f"n{i}", output={"i": i}),
            ]
        events.append(ExecutionCompleted(at=AT, actor="bench", output={}))
        out.append((uuid4(), events))
    return out


def _write_history(loom: Loom, tenant: str, executions: int = 200, per_execution: int = 100) -> int:
    total = 0
    for stream, events in _history(executions, per_execution):
        for i in range(0, len(events), 10):  # ten steps per transaction, as an engine groups them
            loom.store.append(tenant, [Append(stream, i, events[i : i + 10])])
        total += len(events)
    return total


async def projector_from_store(loom: Loom, tenant: str) -> float:
    """Events/s folded by a fresh projector catching up from the store."""
    total = await asyncio.to_thread(_write_history, loom, tenant)
    projector = Projector(loom.store, loom.statuses)
    started = time.perf_counter()
    folded = await asyncio.to_thread(projector.rebuild, tenant)
    assert folded == total, (folded, total)
    return total / (time.perf_counter() - started)


async def projector_from_nats(loom: Loom, tenant: str) -> float:
    """Events/s folded by a fresh projector from a JetStream consumer (the projector role).

    The consumer is new, so it folds the whole stream: the latency runs' events, then
    these; timed from its start until the last of these is folded.
    """
    assert loom.relay is not None
    relayed = loom.relay.published
    total = await asyncio.to_thread(_write_history, loom, tenant)
    loom.relay.wake(tenant)
    while loom.relay.published - relayed < total:
        await asyncio.sleep(0.05)
    position = await asyncio.to_thread(loom.store.max_position, tenant)
    js = await loom.nats.jetstream()
    messages = (await js.stream_info(loom.nats.settings.events_stream)).state.messages
    client = NatsClient(loom.nats.settings)
    projector = Projector(loom.store, loom.statuses)
    consumer = EventConsumer(client, durable=f"bench{secrets.token_hex(3)}")
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run(projector.fold_batches))
    while await asyncio.to_thread(loom.statuses.tracking, tenant) < position:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    return messages / elapsed


async def run_mode(
    title: str, database_url: str, nats_url: str | None
) -> dict[str, dict[str, float]]:
    env = {"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET}
    if nats_url is not None:
        env["LOOM_NATS_URL"] = nats_url
        env["LOOM_SECRETS_KEY"] = new_master_key_text()  # every Loom over NATS needs one
    # No engine role: the bench writes the streams itself, as an engine would. No projector
    # role either: the projector is measured on its own (the snapshot folds the store).
    roles = ("api", "gateway") if nats_url is not None else ROLES
    loom = Loom(Settings.from_env(env), roles=roles)
    server, task, port = await _serve(loom)
    figures: dict[str, dict[str, float]] = {}
    try:
        if nats_url is not None:
            await loom.nats.connected(10)
        figures["1 client, 1,000 events/s"] = await latency(
            loom, port, rate=1000, seconds=5, clients=1
        )
        figures["100 clients, 50 events/s"] = await latency(
            loom, port, rate=50, seconds=5, clients=100
        )
        rates = {"from the store (catch-up)": await projector_from_store(loom, "projstore")}
        if nats_url is not None:
            rates["from a JetStream consumer"] = await projector_from_nats(loom, "projnats")
        figures["projector events/s"] = rates
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
    print_figures(title, figures)
    return figures


def print_figures(title: str, figures: dict[str, dict[str, float]]) -> None:
    print(f"\n== live path, {title}")
    for name, values in figures.items():
        print(f"  {name}")
        for key, value in values.items():
            print(f"    {key:<40} {value:>12,.2f}")


async def _drop_streams(url: str, prefix: str) -> None:
    import nats

    with contextlib.suppress(Exception):
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
        js = nc.jetstream()
        for name in (f"{prefix}_events", f"{prefix}_work"):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await nc.close()


def main(argv: list[str] | None = None) -> None:
    configure_logging("warning")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--postgres", default=None, help="postgresql:// URL (a schema is added)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="loom-live-bench-")
    embedded = f"sqlite:///{workdir}/embedded.db"
    asyncio.run(run_mode("embedded (SQLite, in-process bus)", embedded, None))
    schema = f"loombench_{secrets.token_hex(4)}"
    modes = [("SQLite", f"sqlite:///{workdir}/nats.db")]
    if args.postgres:
        modes.append(
            ("PostgreSQL", f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}")
        )
    for name, database in modes:
        prefix = f"bench_{secrets.token_hex(4)}"
        nats_url = f"{args.nats}?prefix={prefix}"
        title = f"NATS JetStream (api and gateway roles in one process), {name}"
        try:
            asyncio.run(run_mode(title, database, nats_url))
        except Exception as exc:  # the bench reports an absent server, it doesn't fail on it
            print(f"\nNATS mode on {name}: unavailable ({type(exc).__name__}: {exc})")
        finally:
            asyncio.run(_drop_streams(args.nats, prefix))
    if args.postgres:
        _drop_schema(args.postgres, schema)


def _drop_schema(url: str, schema: str) -> None:
    with contextlib.suppress(psycopg.Error):
        drop_schema(url, schema)


if __name__ == "__main__":
    main()
