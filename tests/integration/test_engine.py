"""The engine on real stores: runs, effects, timers, restarts, idempotency, tenancy."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest

from domain.history.replay import replay
from infra.settings import Settings
from projections.status import ExecutionStatus
from services.bootstrap import Loom
from services.usecases.errors import Conflict, NotFound


async def _open(database_url: str) -> Loom:
    # The tests' own HTTP server is on loopback, which the outbound guard refuses unless allowed.
    settings = {"LOOM_DATABASE_URL": database_url, "LOOM_HTTP_ALLOW": "127.0.0.1"}
    loom = Loom(Settings.from_env(settings))
    await loom.start()
    return loom


@pytest.fixture
async def loom(database_url: str) -> AsyncIterator[Loom]:
    loom = await _open(database_url)
    yield loom
    await loom.stop()


class _Recorder(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Recorder.calls.append({"path": self.path, "body": json.loads(body or b"null")})
        payload = json.dumps({"received": json.loads(body or b"null"), "n": len(_Recorder.calls)})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    _Recorder.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _process(elements: list[dict[str, Any]], connections: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "project": "Ops",
        "app": "Tests",
        "name": "p",
        "threads": [
            {
                "key": "main",
                "elements": [{"key": "start", "type": "trigger"}, *elements],
                "connections": [{"source": s, "target": t} for s, t in connections],
            }
        ],
    }


async def _until_finished(loom: Loom, tenant: str, execution_id: str) -> ExecutionStatus:
    for _ in range(400):
        status = await loom.executions.status(tenant, execution_id)
        if status.status in ("completed", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.025)
    raise AssertionError(f"execution {execution_id} did not finish: {status}")


async def _replays_deterministically(loom: Loom, tenant: str, execution_id: str) -> bool:
    history = await asyncio.to_thread(loom.store.read, tenant, UUID(execution_id))
    started = history[0].event
    graph = await loom.catalog.graph(tenant, started.process_id, started.version)
    return replay(execution_id, graph, [r.event for r in history]).deterministic


async def test_an_http_element_calls_out_once_and_its_answer_is_recorded(
    loom: Loom, http_server: str
) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                {
                    "key": "call",
                    "type": "http",
                    "params": {
                        "method": "POST",
                        "url": http_server + "/hook",
                        "body": {"n": "{{ input.n }}"},
                    },
                },
                {"key": "done", "type": "end"},
            ],
            [("start", "call"), ("call", "done")],
        ),
    )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"n": 7})
    status = await _until_finished(loom, "acme", started.execution_id)

    assert status.status == "completed"
    assert _Recorder.calls == [{"path": "/hook", "body": {"n": 7}}]
    assert status.output["done"]["body"] == {"received": {"n": 7}, "n": 1}
    assert await _replays_deterministically(loom, "acme", started.execution_id)
    assert len(_Recorder.calls) == 1  # replay read the answer from history


async def test_a_delay_survives_a_restart_of_the_engine(database_url: str) -> None:
    loom = await _open(database_url)
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                {"key": "wait", "type": "delay", "params": {"seconds": 0.6}},
                {"key": "done", "type": "end"},
            ],
            [("start", "wait"), ("wait", "done")],
        ),
    )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"k": 1})
    await loom.projector.settled()
    assert (await loom.executions.status("acme", started.execution_id)).status == "running"
    await loom.stop()

    revived = await _open(database_url)
    try:
        status = await _until_finished(revived, "acme", started.execution_id)
        assert status.status == "completed"
        assert status.output == {"done": {"k": 1}}
        assert status.nodes["wait"].state == "completed"
    finally:
        await revived.stop()


async def test_many_executions_run_at_once_and_all_complete(loom: Loom) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                {"key": "double", "type": "transform", "params": {"output": {"v": "input.v * 2"}}},
                {"key": "nap", "type": "delay", "params": {"seconds": 0.05}},
                {"key": "done", "type": "end"},
            ],
            [("start", "double"), ("double", "nap"), ("nap", "done")],
        ),
    )
    starts = await asyncio.gather(
        *(
            loom.executions.start("acme", "alice", saved["process_id"], None, {"v": i})
            for i in range(60)
        )
    )
    outputs = [
        (await _until_finished(loom, "acme", s.execution_id)).output["done"]["v"] for s in starts
    ]
    assert outputs == [2 * i for i in range(60)]


async def test_the_same_idempotency_key_answers_the_same_execution(loom: Loom) -> None:
    saved = await loom.processes.save(
        "acme", "alice", _process([{"key": "done", "type": "end"}], [("start", "done")])
    )
    first = await loom.executions.start(
        "acme", "alice", saved["process_id"], None, {"a": 1}, "key-1"
    )
    again = await loom.executions.start(
        "acme", "alice", saved["process_id"], None, {"a": 1}, "key-1"
    )
    assert again.execution_id == first.execution_id
    with pytest.raises(Conflict):
        await loom.executions.start("acme", "alice", saved["process_id"], None, {"a": 2}, "key-1")
    other_tenant = await loom.processes.save(
        "globex", "bob", _process([{"key": "done", "type": "end"}], [("start", "done")])
    )
    theirs = await loom.executions.start(
        "globex", "bob", other_tenant["process_id"], None, {"a": 1}, "key-1"
    )
    assert theirs.execution_id != first.execution_id  # keys are per tenant
    events = await loom.executions.events("acme", first.execution_id)
    assert [e.type for e in events].count("ExecutionStarted") == 1


async def test_another_tenant_cannot_see_or_touch_an_execution(loom: Loom) -> None:
    saved = await loom.processes.save(
        "acme", "alice", _process([{"key": "done", "type": "end"}], [("start", "done")])
    )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, None)
    execution_id = started.execution_id
    with pytest.raises(NotFound):
        await loom.executions.status("globex", execution_id)
    with pytest.raises(NotFound):
        await loom.executions.events("globex", execution_id)
    with pytest.raises(NotFound):
        await loom.executions.cancel("globex", "mallory", execution_id)
    with pytest.raises(NotFound):
        await loom.processes.get("globex", saved["process_id"], None)
    with pytest.raises(NotFound):
        await loom.executions.start("globex", "mallory", saved["process_id"], None, None)
    await loom.projector.settled()
    assert (await loom.executions.list("globex", None, None, 50, None)).items == []


async def test_cancel_during_a_delay_ends_the_execution_and_a_second_cancel_is_refused(
    loom: Loom,
) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                {"key": "wait", "type": "delay", "params": {"seconds": 30}},
                {"key": "done", "type": "end"},
            ],
            [("start", "wait"), ("wait", "done")],
        ),
    )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, None)
    cancelled = await loom.executions.cancel("acme", "carol", started.execution_id)
    assert cancelled.status == "cancelled"
    with pytest.raises(Conflict):
        await loom.executions.cancel("acme", "carol", started.execution_id)
    status = await _until_finished(loom, "acme", started.execution_id)
    assert status.status == "cancelled"
    assert status.nodes["wait"].state == "cancelled"
    events = await loom.executions.events("acme", started.execution_id)
    assert events[-1].type == "ExecutionCancelled" and events[-1].actor == "carol"


async def test_the_read_model_rebuilds_to_the_same_documents(loom: Loom) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                {"key": "big", "type": "condition", "params": {"expression": "input.n > 2"}},
                {"key": "yes", "type": "end"},
                {"key": "no", "type": "end"},
            ],
            [],
        )
        | {},
    )
    del saved
    definition = _process(
        [
            {"key": "big", "type": "condition", "params": {"expression": "input.n > 2"}},
            {"key": "yes", "type": "end"},
            {"key": "no", "type": "end"},
        ],
        [("start", "big")],
    )
    definition["threads"][0]["connections"] += [
        {"source": "big", "source_port": "true", "target": "yes"},
        {"source": "big", "source_port": "false", "target": "no"},
    ]
    saved = await loom.processes.save("acme", "alice", definition)
    ids = [
        (
            await loom.executions.start("acme", "alice", saved["process_id"], None, {"n": n})
        ).execution_id
        for n in range(5)
    ]
    await loom.projector.settled()
    before = [await loom.executions.status("acme", i) for i in ids]
    await asyncio.to_thread(loom.projector.rebuild, "acme")
    after = [await loom.executions.status("acme", i) for i in ids]
    assert before == after
    assert [d.output for d in after] == [
        {"no": {"n": n}} if n <= 2 else {"yes": {"n": n}} for n in range(5)
    ]
