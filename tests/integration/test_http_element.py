"""Elements that touch the world: `http` against a real server, retries, timeouts, cancel.

The server is a real HTTP server on 127.0.0.1 (tests/harness/site.py); Loom reaches it
only because LOOM_HTTP_ALLOW lists 127.0.0.1. Every socket this module's code opens is
checked to be a loopback one: the guard's refusals of 10.0.0.1 or 169.254.169.254
happen before any connection, and this module would fail rather than send them
traffic. Time is a clock the tests move: retry waits, delays and execution timeouts
are durable timers that fire when the clock passes them, whatever the wall time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from domain.definition import Graph, compile_definition, parse_definition
from domain.events import AnyEvent, EffectDiscarded, Event, ExecutionFailed, ExecutionStarted
from domain.history.replay import replay
from domain.ports import EffectFailed
from infra.http_client import HttpxRequester
from infra.outbound_guard import OutboundRefused
from services.bootstrap import Loom
from tests.harness.clock import MovableClock, at
from tests.harness.looms import open_loom, sqlite_url
from tests.harness.processes import CALL_THEN_END, END, call, run, save
from tests.harness.replays import rebuilt, replays
from tests.harness.site import HUGE, Site
from tests.harness.waits import clock_passed, events, has_event, holds, until, until_finished

pytestmark = pytest.mark.usefixtures("connects")


async def _open(tmp_path: Path, clock: MovableClock, allow: str | None = "127.0.0.1") -> Loom:
    env = {} if allow is None else {"LOOM_HTTP_ALLOW": allow}
    return await open_loom(sqlite_url(tmp_path), clock, **env)


@pytest.fixture
async def loom(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Loom]:
    loom = await _open(tmp_path, clock)
    yield loom
    await loom.stop()


# --- the http element -------------------------------------------------------------------------


async def test_an_http_call_renders_its_templates_and_records_the_parsed_json_answer(
    loom: Loom, site: Site
) -> None:
    process = await save(
        loom,
        [
            call(
                site.url + "/leads/{{ input.id }}",
                method="POST",
                headers={"X-Lead": "{{ input.name }}", "X-Fixed": "yes"},
                body={"amount": "{{ input.amount * 2 }}", "tags": ["new", "{{ input.name }}"]},
            ),
            END,
        ],
        CALL_THEN_END,
    )

    execution_id = await run(loom, process, {"id": 42, "name": "bob", "amount": 60})
    status = await until_finished(loom, execution_id)

    assert status["status"] == "completed"
    assert site.requests == [
        {
            "method": "POST",
            "path": "/leads/42",
            "headers": site.requests[0]["headers"] | {"x-lead": "bob", "x-fixed": "yes"},
            "body": {"amount": 120, "tags": ["new", "bob"]},
        }
    ]
    answer = status["output"]["done"]
    assert answer["status"] == 200
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["body"] == {
        "method": "POST",
        "path": "/leads/42",
        "headers": {"x-lead": "bob", "x-fixed": "yes"},
        "body": {"amount": 120, "tags": ["new", "bob"]},
    }
    # A replay decides again from the recorded answer alone: the site hears nothing more,
    # and the execution it rebuilds ends with the very output the status shows.
    assert await replays(loom, execution_id)
    assert (await rebuilt(loom, execution_id)).output == status["output"]
    assert len(site.requests) == 1


async def test_a_body_that_is_not_json_is_recorded_as_text(loom: Loom, site: Site) -> None:
    process = await save(loom, [call(site.url + "/text"), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    assert status["output"]["done"]["body"] == "plain words"


async def test_a_non_2xx_answer_fails_the_element_unless_accept_status_lists_it(
    loom: Loom, site: Site
) -> None:
    refused = await save(loom, [call(site.url + "/status/404"), END], CALL_THEN_END)
    accepted = await save(
        loom, [call(site.url + "/status/404", accept_status=[404, 410]), END], CALL_THEN_END
    )

    failed = await until_finished(loom, await run(loom, refused))
    completed = await until_finished(loom, await run(loom, accepted))

    assert failed["status"] == "failed"
    assert failed["error"].startswith(f"HTTP 404 from GET {site.url}/status/404")
    assert failed["nodes"]["call"]["state"] == "failed"
    assert completed["status"] == "completed"
    assert completed["output"]["done"]["status"] == 404
    assert completed["output"]["done"]["body"] == {"status": 404}


@pytest.mark.parametrize(
    ("path", "params", "why"),
    [
        ("/huge", {}, f"it declares {HUGE} bytes"),
        ("/huge-stream", {}, "it kept coming"),
        ("/echo", {"max_response_bytes": 16}, "it declares"),
    ],
)
async def test_a_body_over_the_size_cap_fails_with_a_clear_error(
    loom: Loom, site: Site, path: str, params: dict[str, Any], why: str
) -> None:
    process = await save(loom, [call(site.url + path, **params), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    cap = params.get("max_response_bytes", 1 << 20)
    assert status["status"] == "failed"
    assert status["error"].startswith(f"response body larger than the {cap} byte cap ({why}")
    assert "max_response_bytes" in status["error"]


async def test_a_slow_answer_fails_the_attempt_after_the_elements_timeout(
    loom: Loom, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/slow", timeout_s=0.3), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    assert status["status"] == "failed"
    assert status["error"] == "timed out after 0.3 s"


async def test_a_redirect_is_followed_to_an_allowed_address(loom: Loom, site: Site) -> None:
    process = await save(loom, [call(site.url + "/redirect/home"), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    assert status["output"]["done"]["body"]["path"] == "/echo?from=redirect"
    assert site.paths() == ["/redirect/home", "/echo?from=redirect"]


@pytest.mark.parametrize(
    ("hop", "address"), [("private", "10.0.0.1"), ("metadata", "169.254.169.254")]
)
async def test_a_redirect_to_an_inside_address_is_refused_before_connecting_to_it(
    loom: Loom, site: Site, connects: list[str], hop: str, address: str
) -> None:
    process = await save(loom, [call(site.url + f"/redirect/{hop}"), END], CALL_THEN_END)

    status = await until_finished(loom, await run(loom, process))

    assert status["status"] == "failed"
    assert status["error"].startswith(f"refused to connect to {address}")
    assert address not in connects
    assert site.paths() == [f"/redirect/{hop}"]


async def test_a_redirect_is_answered_as_is_when_the_element_does_not_follow_redirects(
    loom: Loom, site: Site
) -> None:
    process = await save(
        loom,
        [call(site.url + "/redirect/private", follow_redirects=False, accept_status=[302]), END],
        CALL_THEN_END,
    )

    status = await until_finished(loom, await run(loom, process))

    assert status["output"]["done"]["status"] == 302
    assert status["output"]["done"]["headers"]["location"] == "http://10.0.0.1/secret"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "/relative", "{{ input.n }}"]
)
async def test_a_url_that_is_not_http_fails_the_element_without_calling_anything(
    loom: Loom, url: str, connects: list[str]
) -> None:
    process = await save(loom, [call(url, retry={"max_attempts": 3}), END], CALL_THEN_END)

    execution_id = await run(loom, process, {"n": 5})
    status = await until_finished(loom, execution_id)

    assert status["status"] == "failed"
    assert status["error"].startswith("url must")
    assert status["nodes"]["call"]["attempts"] == 1  # a bad URL is not worth retrying
    assert connects == []


# --- the outbound guard, as a user meets it ---------------------------------------------------


async def test_loopback_is_refused_when_loom_http_allow_does_not_list_it(
    tmp_path: Path, clock: MovableClock, site: Site, connects: list[str]
) -> None:
    strict = await _open(tmp_path, clock, allow=None)
    try:
        port = site.url.rsplit(":", 1)[1]
        by_address = await save(strict, [call(site.url + "/echo"), END], CALL_THEN_END)
        by_name = await save(strict, [call(f"http://localhost:{port}/echo"), END], CALL_THEN_END)

        refused_address = await until_finished(strict, await run(strict, by_address))
        refused_name = await until_finished(strict, await run(strict, by_name))

        assert refused_address["error"].startswith("refused to connect to 127.0.0.1")
        assert refused_name["error"].startswith("refused to connect to 'localhost' (")
        assert "loopback" in refused_name["error"]
        assert site.requests == []
        assert connects == []
    finally:
        await strict.stop()


async def test_a_host_name_listed_in_loom_http_allow_is_reachable(
    tmp_path: Path, clock: MovableClock, site: Site
) -> None:
    allowing = await _open(tmp_path, clock, allow="localhost")
    try:
        port = site.url.rsplit(":", 1)[1]
        process = await save(allowing, [call(f"http://localhost:{port}/echo"), END], CALL_THEN_END)

        status = await until_finished(allowing, await run(allowing, process))

        assert status["status"] == "completed"
        assert site.paths() == ["/echo"]
    finally:
        await allowing.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/",
        "http://[::1]:9/",
    ],
)
async def test_the_requester_refuses_inside_addresses_before_connecting(
    url: str, connects: list[str]
) -> None:
    requester = HttpxRequester(allow=())
    try:
        with pytest.raises(OutboundRefused, match="refused to connect"):
            await requester.request({"method": "GET", "url": url}, timeout_s=2)
    finally:
        await requester.close()
    assert connects == []


async def test_only_what_loom_http_allow_lists_is_allowed_anyway(
    site: Site, connects: list[str]
) -> None:
    requester = HttpxRequester(allow=("127.0.0.1",))
    try:
        answer = await requester.request({"method": "GET", "url": site.url + "/echo"}, 2)
        with pytest.raises(OutboundRefused):
            await requester.request({"method": "GET", "url": "http://10.0.0.1/"}, 2)
        with pytest.raises(EffectFailed, match="refused"):
            await requester.request({"method": "GET", "url": "http://169.254.169.254/"}, 2)
    finally:
        await requester.close()
    assert answer["status"] == 200
    assert set(connects) == {"127.0.0.1"}


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
    first = await _open(tmp_path, clock)
    process = await save(first, [call(site.url + "/flaky", retry=RETRY), END], CALL_THEN_END)
    execution_id = await run(first, process)
    await until(lambda: has_event(first, execution_id, "NodeFailed", attempt=1), "attempt 1")
    await first.stop()

    second = await _open(tmp_path, clock)
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
    async with loom.engine._lock(("acme", execution_id)):
        cancelling = asyncio.create_task(loom.executions.cancel("acme", "carol", execution_id))
        await asyncio.sleep(0.05)
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


# --- the committed histories of these behaviours ----------------------------------------------

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


class History(msgspec.Struct):
    definition: dict[str, Any]
    events: list[AnyEvent]


def committed(name: str) -> tuple[Graph, list[Event]]:
    history = msgspec.json.decode((HISTORIES / f"{name}.json").read_bytes(), type=History)
    return compile_definition(parse_definition(history.definition)), list(history.events)


@pytest.mark.parametrize("name", ["http_cancelled_discarded", "http_execution_timeout"])
def test_a_committed_history_replays_deterministically_at_every_point(name: str) -> None:
    graph, history = committed(name)

    for end in range(1, len(history) + 1):
        report = replay("ex-1", graph, history[:end])
        assert report.deterministic, (end, report.divergence)


def test_a_discarded_answer_for_an_attempt_never_in_flight_diverges() -> None:
    graph, history = committed("http_cancelled_discarded")
    discarded = history[-1]
    assert isinstance(discarded, EffectDiscarded)

    report = replay("ex-1", graph, [*history[:-1], msgspec.structs.replace(discarded, attempt=2)])

    assert report.divergence is not None
    assert report.divergence.seq == len(history)


def test_an_execution_timeout_that_history_never_set_diverges() -> None:
    graph, history = committed("http_execution_timeout")
    started = history[0]
    assert isinstance(started, ExecutionStarted) and started.timeout_s == 30
    timed_out = next(i for i, e in enumerate(history) if isinstance(e, ExecutionFailed))

    report = replay("ex-1", graph, [msgspec.structs.replace(started, timeout_s=None), *history[1:]])

    assert report.divergence is not None
    assert report.divergence.seq == timed_out + 1
