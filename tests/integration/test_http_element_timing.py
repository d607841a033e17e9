"""The `http` element over time: retries and their backoff, execution timeouts, error
branches, and cancel (during a delay, during a call, and an answer arriving after it).

Time is a clock the tests move: retry waits, delays and execution timeouts are
durable timers that fire when the clock passes them, whatever the wall time. The
server is tests/harness/site.py's on loopback, and every socket is checked to be one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.bootstrap import Loom
from tests.harness.clock import MovableClock, at
from tests.harness.looms import open_on_clock
from tests.harness.processes import CALL_THEN_END, END, call, run, save
from tests.harness.replays import replays
from tests.harness.site import Site
from tests.harness.waits import clock_passed, events, has_event, holds, until, until_finished

pytestmark = pytest.mark.usefixtures("connects")


@pytest.fixture
def loom(clocked_loom: Loom) -> Loom:
    return clocked_loom


# --- retries and timeouts ---------------------------------------------------------------------


def attempts(history: list[dict[str, Any]], key: str = "call") -> list[tuple[Any, ...]]:
    return [
        (e["type"], e["data"]["attempt"], e["at"], e["data"].get("retry_at"))
        for e in history
        if e["element"] == key and e["type"] in ("NodeExecuting", "NodeFailed", "NodeCompleted")
    ]


RETRY = {"max_attempts": 3, "initial_interval_s": 10, "backoff": 3, "max_interval_s": 600}


async def test_each_attempt_is_recorded_and_waits_out_its_backoff_on_the_clock(
    loom: Loom, clock: MovableClock, site: Site
) -> None:
    site.failures_left = 2
    process = await save(loom, [call(site.url + "/flaky", retry=RETRY), END], CALL_THEN_END)
    execution_id = await run(loom, process)

    await until(lambda: has_event(loom, execution_id, "NodeFailed", attempt=1), "attempt 1")
    await clock_passed(loom, clock, 9)
    assert len(site.requests) == 1  # nothing happens before the clock reaches the retry
    await clock_passed(loom, clock, 1)
    await until(lambda: has_event(loom, execution_id, "NodeFailed", attempt=2), "attempt 2")
    await clock_passed(loom, clock, 30)
    status = await until_finished(loom, execution_id)

    assert status["status"] == "completed"
    assert status["nodes"]["call"]["attempts"] == 3
    assert status["output"]["done"]["body"] == {"ok": True, "calls": 3}
    assert attempts(await events(loom, execution_id)) == [
        ("NodeExecuting", 1, at(0), None),
        ("NodeFailed", 1, at(0), at(10)),
        ("NodeExecuting", 2, at(10), None),
        ("NodeFailed", 2, at(10), at(40)),
        ("NodeExecuting", 3, at(40), None),
        ("NodeCompleted", 3, at(40), None),
    ]
    assert await replays(loom, execution_id)


async def test_a_retry_wait_survives_a_restart_of_loom(
    tmp_path: Path, clock: MovableClock, site: Site
) -> None:
    site.failures_left = 1
    first = await open_on_clock(tmp_path, clock)
    process = await save(first, [call(site.url + "/flaky", retry=RETRY), END], CALL_THEN_END)
    execution_id = await run(first, process)
    await until(lambda: has_event(first, execution_id, "NodeFailed", attempt=1), "attempt 1")
    await first.stop()

    second = await open_on_clock(tmp_path, clock)
    try:
        await clock_passed(second, clock, 10)
        status = await until_finished(second, execution_id)

        assert status["status"] == "completed"
        assert attempts(await events(second, execution_id))[-2:] == [
            ("NodeExecuting", 2, at(10), None),
            ("NodeCompleted", 2, at(10), None),
        ]
        assert len(site.requests) == 2
    finally:
        await second.stop()


async def test_an_execution_fails_when_its_own_timeout_passes(
    loom: Loom, clock: MovableClock
) -> None:
    process = await save(
        loom,
        [{"key": "wait", "type": "delay", "params": {"seconds": 60}}, END],
        [
            ("start", "wait"),
            ("wait", "done"),
        ],
    )
    execution_id = await run(loom, process, timeout_s=5)
    await until(lambda: has_event(loom, execution_id, "NodeExecuting", element="wait"), "wait")

    await clock_passed(loom, clock, 4)
    assert (await events(loom, execution_id))[-1]["type"] == "NodeExecuting"
    await clock_passed(loom, clock, 1)
    status = await until_finished(loom, execution_id)

    history = await events(loom, execution_id)
    assert history[0]["data"]["timeout_s"] == 5
    assert status["status"] == "failed"
    assert status["error"] == "the execution timed out after 5 s"
    assert (history[-1]["type"], history[-1]["at"]) == ("ExecutionFailed", at(5))
    await clock_passed(loom, clock, 60)
    assert len(await events(loom, execution_id)) == len(history)  # the delay never fires
    assert await replays(loom, execution_id)


async def _let_the_held_call_answer(loom: Loom, site: Site, execution_id: str) -> None:
    """Let the site answer the held /slow call, and wait until this Loom performs no effect of
    the execution any more: had the call not been stopped, its answer is recorded by then."""
    site.release.set()
    await until(holds(site.responded.is_set), "the site to let the call go")
    await until(holds(lambda: not loom.engine.running("acme", execution_id)), "the call to end")


async def test_an_execution_timeout_stops_an_http_call_in_flight(
    loom: Loom, clock: MovableClock, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/slow"), END], CALL_THEN_END)
    execution_id = await run(loom, process, timeout_s=30)
    await until(holds(site.arrived.is_set), "the call to arrive")

    await clock_passed(loom, clock, 30)
    status = await until_finished(loom, execution_id)
    await _let_the_held_call_answer(loom, site, execution_id)

    history = await events(loom, execution_id)
    assert status["status"] == "failed"
    assert history[-1]["type"] == "ExecutionFailed"  # the stopped call recorded nothing
    assert await replays(loom, execution_id)


# --- error branches ---------------------------------------------------------------------------


async def test_an_error_branch_takes_the_final_failure_and_the_execution_goes_on(
    loom: Loom, site: Site
) -> None:
    process = await save(
        loom,
        [
            call(site.url + "/status/503", retry={"max_attempts": 2, "initial_interval_s": 0}),
            {"key": "ok", "type": "end"},
            {
                "key": "fallback",
                "type": "transform",
                "params": {"output": {"why": "input.error", "tries": "input.attempts"}},
            },
            {"key": "recovered", "type": "end"},
        ],
        [
            ("start", "call"),
            ("call", "ok"),
            ("call", "fallback", "error"),
            ("fallback", "recovered"),
        ],
    )

    execution_id = await run(loom, process)
    status = await until_finished(loom, execution_id)

    assert status["status"] == "completed"
    assert status["nodes"]["call"]["state"] == "failed"
    assert status["nodes"]["call"]["attempts"] == 2
    assert status["nodes"]["ok"]["state"] == "skipped"
    recovered = status["output"]["recovered"]
    assert recovered["tries"] == 2
    assert recovered["why"].startswith(f"HTTP 503 from GET {site.url}/status/503")
    assert site.paths() == ["/status/503", "/status/503"]
    assert await replays(loom, execution_id)


async def test_without_an_error_branch_the_execution_fails_with_the_elements_error(
    loom: Loom, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/status/500"), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    assert status["status"] == "failed"
    assert status["error"].startswith("HTTP 500 from GET")
    assert status["failed_element"] == "call"
    assert "done" not in status["nodes"]  # never reached


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_during_a_delay_stops_its_timer(loom: Loom, clock: MovableClock) -> None:
    process = await save(
        loom,
        [{"key": "wait", "type": "delay", "params": {"seconds": 60}}, END],
        [("start", "wait"), ("wait", "done")],
    )
    execution_id = await run(loom, process)
    await until(lambda: has_event(loom, execution_id, "NodeExecuting", element="wait"), "wait")

    cancelled = await loom.executions.cancel("acme", "carol", execution_id)
    await clock_passed(loom, clock, 120)
    status = await until_finished(loom, execution_id)

    history = await events(loom, execution_id)
    assert cancelled.status == "cancelled"
    assert status["status"] == "cancelled"
    assert status["nodes"]["wait"]["state"] == "cancelled"
    assert (history[-1]["type"], history[-1]["actor"]) == ("ExecutionCancelled", "carol")
    assert not any(e["element"] == "done" for e in history)
    assert await replays(loom, execution_id)


async def test_cancel_during_a_slow_http_call_stops_the_call(loom: Loom, site: Site) -> None:
    process = await save(loom, [call(site.url + "/slow"), END], CALL_THEN_END)
    execution_id = await run(loom, process)
    await until(holds(site.arrived.is_set), "the call to arrive")

    await loom.executions.cancel("acme", "carol", execution_id)
    status = await until_finished(loom, execution_id)
    await _let_the_held_call_answer(loom, site, execution_id)

    history = await events(loom, execution_id)
    assert status["status"] == "cancelled"
    assert status["nodes"]["call"]["state"] == "cancelled"
    assert history[-1]["type"] == "ExecutionCancelled"  # the stopped call recorded nothing
    assert await replays(loom, execution_id)


async def test_an_answer_that_arrives_after_cancel_is_recorded_as_discarded(
    loom: Loom, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/slow"), END], CALL_THEN_END)
    execution_id = await run(loom, process)
    await until(holds(site.arrived.is_set), "the call to arrive")
    token = ("acme", execution_id, "call", 1)

    # Hold the execution's lock (engine internals, to order the race): the cancel queues
    # first, then the answer comes back and queues behind it.
    lock = loom.engine._lock(("acme", execution_id))
    async with lock:
        cancelling = asyncio.create_task(loom.executions.cancel("acme", "carol", execution_id))
        await until(holds(lambda: bool(lock._waiters)), "the cancel to queue on the lock")
        site.release.set()
        await until(holds(lambda: loom.engine._calls.answered(token)), "the answer")
    await cancelling
    await until(lambda: has_event(loom, execution_id, "EffectDiscarded"), "the discard")

    history = await events(loom, execution_id)
    assert [e["type"] for e in history[-2:]] == ["ExecutionCancelled", "EffectDiscarded"]
    discarded = history[-1]
    assert discarded["element"] == "call"
    assert discarded["data"]["attempt"] == 1
    assert discarded["data"]["output"]["body"] == {"slow": True}
    assert discarded["data"]["error"] is None
    status = await until_finished(loom, execution_id)

    async def folded() -> bool:
        doc = await loom.executions.status("acme", execution_id)
        return doc.position == len(history)

    await until(folded, "the read model to fold the discard")
    assert status["status"] == "cancelled"
    assert status["nodes"]["call"]["state"] == "cancelled"
    assert await replays(loom, execution_id)


async def test_cancelling_a_finished_execution_is_a_conflict(loom: Loom, site: Site) -> None:
    from services.usecases.errors import Conflict

    process = await save(loom, [call(site.url + "/echo"), END], CALL_THEN_END)
    execution_id = await run(loom, process)
    await until_finished(loom, execution_id)

    with pytest.raises(Conflict):
        await loom.executions.cancel("acme", "carol", execution_id)
