"""Engines sharing the work queue over a real NATS JetStream and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import select
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest

from domain.events import ExecutionCompleted, NodeCompleted
from domain.ports import StoreUnavailable
from infra.settings import Settings
from services.bootstrap import Loom
from services.roles.engine import worker
from tests.nats_support import eventually
from tests.support import SECRETS_KEY

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


class _Hook(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hook.calls.append(self.path)
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def settings(postgres_url: str, postgres_schema: str, nats_url: str) -> Settings:
    database = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"
    return Settings.from_env(
        {
            "LOOM_DATABASE_URL": database,
            "LOOM_NATS_URL": nats_url,
            "LOOM_HTTP_ALLOW": "127.0.0.1",
            "LOOM_SECRETS_KEY": SECRETS_KEY,
        }
    )


@pytest.fixture
async def looms(settings: Settings) -> AsyncIterator[Any]:
    started: list[Loom] = []

    async def loom(*roles: str) -> Loom:
        started.append(Loom(settings, roles=roles))
        await started[-1].start()
        return started[-1]

    yield loom
    for loom_ in started:
        await loom_.stop()


def chain(*middle: dict[str, Any]) -> dict[str, Any]:
    elements = [{"key": "start", "type": "trigger"}, *middle, {"key": "done", "type": "end"}]
    keys = [e["key"] for e in elements]
    return {
        "project": "Engines",
        "app": "Queue",
        "name": "p",
        "threads": [
            {
                "key": "main",
                "elements": elements,
                "connections": [{"source": a, "target": b} for a, b in itertools.pairwise(keys)],
            }
        ],
    }


async def finished(loom: Loom, execution_id: str) -> bool:
    status = await loom.executions.status("acme", execution_id)
    return status.status in ("completed", "failed", "cancelled")


async def test_a_timer_handed_back_fires_on_the_engine_that_is_there_when_it_is_due(
    looms: Any,
) -> None:
    first = await looms("api", "engine")
    saved = await first.processes.save(
        "acme", "alice", chain({"key": "wait", "type": "delay", "params": {"seconds": 1.5}})
    )
    started = await first.executions.start("acme", "alice", saved["process_id"], None, {})
    execution_id = started.execution_id
    await asyncio.sleep(0.5)  # the first engine took the item and handed it back until then
    await first.stop()
    second = await looms("engine")

    await eventually(lambda: finished(second, execution_id), 20)
    status = await second.executions.status("acme", execution_id)
    assert status.status == "completed"


async def test_engines_share_executions_and_never_record_a_step_twice(
    looms: Any, hook: str
) -> None:
    api = await looms("api")
    for _ in range(2):
        await looms("engine")  # two engines, stopped by the fixture
    saved = await api.processes.save(
        "acme",
        "alice",
        chain(
            {"key": "call", "type": "http", "params": {"method": "POST", "url": hook + "/x"}},
            {"key": "wait", "type": "delay", "params": {"seconds": 0.2}},
        ),
    )
    ids = [
        (
            await api.executions.start("acme", "alice", saved["process_id"], None, {"i": i})
        ).execution_id
        for i in range(20)
    ]

    async def all_finished() -> bool:
        return all([await finished(api, i) for i in ids])

    await eventually(all_finished, 30)
    assert len(_Hook.calls) == 20, "each effect performed once when no engine dies"
    for execution_id in ids:
        history = await asyncio.to_thread(api.store.read, "acme", UUID(execution_id))
        completed = [r.event.element for r in history if isinstance(r.event, NodeCompleted)]
        assert completed == ["start", "call", "wait", "done"]
        assert isinstance(history[-1].event, ExecutionCompleted)


class _Hanging(BaseHTTPRequestHandler):
    """Answers only after 30 s, noting when its caller hangs up first."""

    received = threading.Event()
    dropped = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hanging.received.set()
        for _ in range(300):
            ready, _, _ = select.select([self.connection], [], [], 0.1)
            if ready and not self.connection.recv(1, socket.MSG_PEEK):
                _Hanging.dropped.set()
                return
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hanging() -> Iterator[str]:
    """The URL of a `_Hanging` server, its events cleared."""
    _Hanging.received.clear()
    _Hanging.dropped.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hanging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow"
    server.shutdown()


async def call_in_flight(api: Loom, url: str) -> str:
    """Start an execution whose http element calls `url`; return once the call arrived."""
    call = {"key": "call", "type": "http", "params": {"method": "POST", "url": url}}
    saved = await api.processes.save("acme", "alice", chain(call))
    started = await api.executions.start("acme", "alice", saved["process_id"], None, {})
    assert await asyncio.to_thread(_Hanging.received.wait, 15)
    return started.execution_id


async def test_a_cancel_over_the_api_stops_the_call_another_engine_is_making(
    looms: Any, hanging: str
) -> None:
    api, _engine = await looms("api"), await looms("engine")
    execution_id = await call_in_flight(api, hanging)

    cancelled = await api.executions.cancel("acme", "alice", execution_id)

    assert cancelled.status == "cancelled"
    # The engine holding it notices within its check interval and hangs up.
    assert await asyncio.to_thread(_Hanging.dropped.wait, 10)
    history = await asyncio.to_thread(api.store.read, "acme", UUID(execution_id))
    completed = [r.event.element for r in history if isinstance(r.event, NodeCompleted)]
    assert completed == ["start"]


async def test_an_engine_that_cannot_reach_the_store_for_a_while_keeps_its_call_going(
    looms: Any, hanging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, engine = await looms("api"), await looms("engine")
    execution_id = await call_in_flight(api, hanging)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("connection refused")

    with monkeypatch.context() as outage:
        outage.setattr(engine.store, "read", unreachable)
        await asyncio.sleep(2.5)  # more than one check of the held execution
    assert not _Hanging.dropped.is_set()
    assert engine.worker.held == 1  # not handed back: nobody calls out a second time

    await api.executions.cancel("acme", "alice", execution_id)
    assert await asyncio.to_thread(_Hanging.dropped.wait, 10)


async def test_a_chain_longer_than_a_slice_started_over_the_api_is_finished_by_the_engines(
    looms: Any,
) -> None:
    # The api records the start and the first slice; the rest is the engines' to run,
    # slice by slice, each element exactly once.
    api = await looms("api")
    await looms("engine")
    steps = [
        {"key": f"t{i}", "type": "transform", "params": {"expression": "input + 1"}}
        for i in range(600)
    ]
    saved = await api.processes.save("acme", "alice", chain(*steps))
    started = await api.executions.start("acme", "alice", saved["process_id"], None, 0)
    assert started.status == "running"  # paused after its first slice
    execution_id = started.execution_id

    await eventually(lambda: finished(api, execution_id), 30)
    status = await api.executions.status("acme", execution_id)
    assert status.status == "completed" and status.output == {"done": 600}
    history = await asyncio.to_thread(api.store.read, "acme", UUID(execution_id))
    completed = [r.event.element for r in history if isinstance(r.event, NodeCompleted)]
    assert completed == ["start", *(f"t{i}" for i in range(600)), "done"]


async def test_a_webhook_answers_the_output_an_engine_apart_produced(looms: Any, hook: str) -> None:
    from services.usecases.webhooks import HookCall

    api = await looms("api")
    await looms("engine")
    await looms("engine")
    body = chain({"key": "call", "type": "http", "params": {"method": "POST", "url": f"{hook}/x"}})
    body["triggers"] = [{"key": "sync", "type": "webhook", "respond": "output", "timeout_s": 20}]
    saved = await api.processes.save("acme", "alice", body)
    token = saved["triggers"][0]["url"].removeprefix("/hooks/")

    answers = await asyncio.gather(
        *(
            api.webhooks.deliver(
                HookCall(token=token, method="POST", body=b'{"n": %d}' % n, query={}, headers={})
            )
            for n in range(10)
        )
    )

    # The api process records the start only: the call and the end come from the engines,
    # and each answer waited for its execution's end on the live feed over NATS.
    assert [a.status for a in answers] == [200] * 10
    assert all(a.body["done"]["body"] == {"ok": True} for a in answers)
    assert len(_Hook.calls) == 10


async def test_a_signal_posted_to_the_api_wakes_the_wait_and_an_engine_apart_runs_what_follows(
    looms: Any, hook: str
) -> None:
    # The api records the signal and what it decides; the http call after it is an
    # engine's, reached through the work item the signal queued (the wait has no timer,
    # so no engine held the execution meanwhile). The projector apart keeps the inbox.
    api = await looms("api")
    await looms("engine")
    await looms("projector")
    saved = await api.processes.save(
        "acme",
        "alice",
        chain(
            {"key": "approve", "type": "signal", "params": {"name": "approval"}},
            {"key": "call", "type": "http", "params": {"method": "POST", "url": hook + "/ok"}},
        ),
    )
    started = await api.executions.start("acme", "alice", saved["process_id"], None, {})
    execution_id = started.execution_id

    async def listed() -> bool:
        waits = await api.signals.waiting("acme")
        return [w.execution_id for w in waits] == [execution_id]

    await eventually(listed, 20)
    sent = await api.signals.send("acme", "bob", execution_id, "approval", {"ok": True})
    assert sent.status == "running"

    await eventually(lambda: finished(api, execution_id), 20)
    status = await api.executions.status("acme", execution_id)
    assert status.status == "completed"
    assert status.nodes["approve"].output["by"] == "bob"
    assert _Hook.calls == ["/ok"]
    await eventually(lambda: _empty(api.signals.waiting("acme")), 20)


async def _empty(waits: Any) -> bool:
    return not await waits


async def test_a_signal_for_a_wait_with_a_timeout_runs_what_follows_before_the_timeout(
    looms: Any, hook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait's timer hands its item back for an hour; a signal cannot queue it again
    # meanwhile, so the engines look again every SIGNAL_RECHECK_S (1 s here).
    monkeypatch.setattr(worker, "SIGNAL_RECHECK_S", 1.0)
    api = await looms("api")
    await looms("engine")
    await looms("projector")
    saved = await api.processes.save(
        "acme",
        "alice",
        chain(
            {"key": "approve", "type": "signal", "params": {"name": "ok", "timeout_s": 3600}},
            {"key": "call", "type": "http", "params": {"method": "POST", "url": hook + "/late"}},
        ),
    )
    started = await api.executions.start("acme", "alice", saved["process_id"], None, {})
    execution_id = started.execution_id
    await eventually(lambda: _listed(api, execution_id), 20)
    await asyncio.sleep(0.5)  # the engine took the item and handed it back until later

    await api.signals.send("acme", "bob", execution_id, "ok", None)

    await eventually(lambda: finished(api, execution_id), 20)
    assert _Hook.calls == ["/late"]


async def _listed(loom: Loom, execution_id: str) -> bool:
    return [w.execution_id for w in await loom.signals.waiting("acme")] == [execution_id]
