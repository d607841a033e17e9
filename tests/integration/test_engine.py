"""The engine on real stores: runs, effects, timers, restarts, idempotency, tenancy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.bootstrap import Loom
from services.usecases.errors import Conflict, NotFound
from tests.harness.looms import open_loom
from tests.harness.processes import call, one_thread
from tests.harness.replays import rebuilt, replays
from tests.harness.site import Site
from tests.harness.waits import until_finished


async def _open(database_url: str) -> Loom:
    # The site is on loopback, which the outbound guard refuses unless allowed.
    return await open_loom(database_url, LOOM_HTTP_ALLOW="127.0.0.1")


@pytest.fixture
async def loom(database_url: str) -> AsyncIterator[Loom]:
    loom = await _open(database_url)
    yield loom
    await loom.stop()


def _process(elements: list[dict[str, Any]], connections: list[tuple[str, ...]]) -> dict[str, Any]:
    return one_thread(elements, connections, app="Tests")


async def test_an_http_element_calls_out_once_and_its_answer_is_recorded(
    loom: Loom, site: Site
) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        _process(
            [
                call(site.url + "/hook", method="POST", body={"n": "{{ input.n }}"}),
                {"key": "done", "type": "end"},
            ],
            [("start", "call"), ("call", "done")],
        ),
    )
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"n": 7})
    status = await until_finished(loom, started.execution_id)

    assert status["status"] == "completed"
    assert [(r["path"], r["body"]) for r in site.requests] == [("/hook", {"n": 7})]
    assert status["output"]["done"]["body"]["body"] == {"n": 7}
    # A replay decides again from the recorded answer alone: the site hears nothing more,
    # and the execution it rebuilds ends with the very output the status shows.
    calls = len(site.requests)
    assert await replays(loom, started.execution_id)
    assert (await rebuilt(loom, started.execution_id)).output == status["output"]
    assert len(site.requests) == calls == 1


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
        status = await until_finished(revived, started.execution_id)
        assert status["status"] == "completed"
        assert status["output"] == {"done": {"k": 1}}
        assert status["nodes"]["wait"]["state"] == "completed"
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
    outputs = [(await until_finished(loom, s.execution_id))["output"]["done"]["v"] for s in starts]
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
    status = await until_finished(loom, started.execution_id)
    assert status["status"] == "cancelled"
    assert status["nodes"]["wait"]["state"] == "cancelled"
    events = await loom.executions.events("acme", started.execution_id)
    assert events[-1].type == "ExecutionCancelled" and events[-1].actor == "carol"


async def test_the_read_model_rebuilds_to_the_same_documents(loom: Loom) -> None:
    definition = _process(
        [
            {"key": "big", "type": "condition", "params": {"expression": "input.n > 2"}},
            {"key": "yes", "type": "end"},
            {"key": "no", "type": "end"},
        ],
        [("start", "big"), ("big", "yes", "true"), ("big", "no", "false")],
    )
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
