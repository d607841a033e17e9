"""Elements that touch the world: `http` against a real server, retries, timeouts, cancel.

The server is a real HTTP server on 127.0.0.1 started here; Loom reaches it only
because LOOM_HTTP_ALLOW lists 127.0.0.1. Every socket this module's code opens is
checked to be a loopback one: the guard's refusals of 10.0.0.1 or 169.254.169.254
happen before any connection, and this module would fail rather than send them
traffic. Time is a clock the tests move: retry waits, delays and execution timeouts
are durable timers that fire when the clock passes them, whatever the wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from domain.clock import iso, parse_iso
from domain.definition import Graph, compile_definition, parse_definition
from domain.events import AnyEvent, EffectDiscarded, Event, ExecutionFailed, ExecutionStarted
from domain.history.replay import replay
from domain.ports import EffectFailed
from infra.http_client import HttpxRequester
from infra.outbound_guard import OutboundRefused
from infra.settings import Settings
from services.bootstrap import Loom

T0 = "2024-05-01T09:00:00.000000Z"
HUGE = 2 << 20


# --- the world: a loopback server, and nothing but loopback -------------------------------


class Site:
    """What the test server saw and how it behaves; its handler reads this."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 0
        self.arrived = threading.Event()  # a /slow request is being held
        self.release = threading.Event()  # let held /slow requests answer
        self.responded = threading.Event()  # a held /slow request was answered
        self.url = ""

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            site.requests.append(
                {"method": self.command, "path": self.path, "headers": headers, "body": body}
            )
            path = self.path.split("?")[0]
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._route(path, body, headers)

        def _route(self, path: str, body: Any, headers: dict[str, str]) -> None:
            if path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                self._json(code, {"status": code})
            elif path == "/text":
                self._send(200, b"plain words", "text/plain; charset=utf-8")
            elif path == "/flaky":
                if site.failures_left > 0:
                    site.failures_left -= 1
                    self._send(500, b"try again later", "text/plain")
                else:
                    self._json(200, {"ok": True, "calls": len(site.requests)})
            elif path == "/slow":
                site.arrived.set()
                site.release.wait(10)
                self._json(200, {"slow": True})
                site.responded.set()
            elif path == "/huge":
                self._send(200, b"x" * HUGE, "application/octet-stream")
            elif path == "/huge-stream":
                # No content-length: the body runs until the connection closes.
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                for _ in range(HUGE // 65536):
                    self.wfile.write(b"y" * 65536)
            elif path.startswith("/redirect/"):
                target = {
                    "private": "http://10.0.0.1/secret",
                    "metadata": "http://169.254.169.254/latest/meta-data/",
                    "home": "/echo?from=redirect",
                }[path.rsplit("/", 1)[1]]
                self.send_response(302)
                self.send_header("location", target)
                self.send_header("content-length", "0")
                self.end_headers()
            else:
                echoed = {k: v for k, v in headers.items() if k.startswith("x-")}
                self._json(
                    200,
                    {"method": self.command, "path": self.path, "headers": echoed, "body": body},
                )

        def _json(self, code: int, payload: Any) -> None:
            self._send(code, json.dumps(payload).encode(), "application/json")

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield site
    site.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address this process connects a socket to; anything but loopback fails."""
    seen: list[str] = []
    original = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        seen.append(host)
        if isinstance(address, tuple) and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return seen


# --- Loom on a clock the tests move ---------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = parse_iso(T0)

    def now(self) -> float:
        return self.t


def at(seconds: float) -> str:
    return iso(parse_iso(T0) + seconds)


async def _open(tmp_path: Path, clock: Clock, allow: str | None = "127.0.0.1") -> Loom:
    env = {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/loom.db"}
    if allow is not None:
        env["LOOM_HTTP_ALLOW"] = allow
    loom = Loom(Settings.from_env(env), clock=clock)
    await loom.start()
    return loom


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def loom(tmp_path: Path, clock: Clock) -> AsyncIterator[Loom]:
    loom = await _open(tmp_path, clock)
    yield loom
    await loom.stop()


async def advance(loom: Loom, clock: Clock, seconds: float) -> None:
    clock.t += seconds
    loom.engine.wake_timers()
    await asyncio.sleep(0)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def save(
    loom: Loom, elements: list[dict[str, Any]], connections: list[tuple[str, ...]]
) -> str:
    edges = [
        {"source": c[0], "target": c[1], **({"source_port": c[2]} if len(c) > 2 else {})}
        for c in connections
    ]
    saved = await loom.processes.save(
        "acme",
        "alice",
        {
            "project": "Ops",
            "app": "World",
            "name": "p",
            "threads": [
                {
                    "key": "main",
                    "elements": [{"key": "start", "type": "trigger"}, *elements],
                    "connections": edges,
                }
            ],
        },
    )
    return str(saved["process_id"])


async def run(
    loom: Loom, process_id: str, input: Any = None, timeout_s: float | None = None
) -> str:
    started = await loom.executions.start("acme", "alice", process_id, None, input, None, timeout_s)
    return started.execution_id


async def events(loom: Loom, execution_id: str) -> list[dict[str, Any]]:
    """The execution's events as the API sends them."""
    result: list[dict[str, Any]] = msgspec.to_builtins(
        await loom.executions.events("acme", execution_id)
    )
    return result


async def has_event(loom: Loom, execution_id: str, kind: str, **data: Any) -> bool:
    return any(
        e["type"] == kind and all(e["data"].get(k) == v for k, v in data.items())
        for e in await events(loom, execution_id)
    )


async def finished(loom: Loom, execution_id: str) -> dict[str, Any]:
    """The status document (as the API sends it) once the read model shows the execution ended."""

    async def ended() -> bool:
        status = await loom.executions.status("acme", execution_id)
        return status.status in ("completed", "failed", "cancelled")

    await until(ended, f"execution {execution_id} to end")
    await loom.projector.settled()
    document: dict[str, Any] = msgspec.to_builtins(
        await loom.executions.status("acme", execution_id)
    )
    return document


async def replays(loom: Loom, execution_id: str) -> bool:
    history = await asyncio.to_thread(loom.store.read, "acme", UUID(execution_id))
    started = history[0].event
    graph = await loom.catalog.graph("acme", started.process_id, started.version)
    report = replay(execution_id, graph, [r.event for r in history])
    assert report.deterministic, report.divergence
    return True


def call(url: str, **params: Any) -> dict[str, Any]:
    return {"key": "call", "type": "http", "params": {"url": url, **params}}


END = {"key": "done", "type": "end"}
CALL_THEN_END = [("start", "call"), ("call", "done")]


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
    status = await finished(loom, execution_id)

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
    assert await replays(loom, execution_id)
    assert len(site.requests) == 1  # the replay read the answer from history


async def test_a_body_that_is_not_json_is_recorded_as_text(loom: Loom, site: Site) -> None:
    process = await save(loom, [call(site.url + "/text"), END], CALL_THEN_END)

    status = await finished(loom, await run(loom, process))

    assert status["output"]["done"]["body"] == "plain words"


async def test_a_non_2xx_answer_fails_the_element_unless_accept_status_lists_it(
    loom: Loom, site: Site
) -> None:
    refused = await save(loom, [call(site.url + "/status/404"), END], CALL_THEN_END)
    accepted = await save(
        loom, [call(site.url + "/status/404", accept_status=[404, 410]), END], CALL_THEN_END
    )

    failed = await finished(loom, await run(loom, refused))
    completed = await finished(loom, await run(loom, accepted))

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

    status = await finished(loom, await run(loom, process))

    cap = params.get("max_response_bytes", 1 << 20)
    assert status["status"] == "failed"
    assert status["error"].startswith(f"response body larger than the {cap} byte cap ({why}")
    assert "max_response_bytes" in status["error"]


async def test_a_slow_answer_fails_the_attempt_after_the_elements_timeout(
    loom: Loom, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/slow", timeout_s=0.3), END], CALL_THEN_END)

    status = await finished(loom, await run(loom, process))

    assert status["status"] == "failed"
    assert status["error"] == "timed out after 0.3 s"


async def test_a_redirect_is_followed_to_an_allowed_address(loom: Loom, site: Site) -> None:
    process = await save(loom, [call(site.url + "/redirect/home"), END], CALL_THEN_END)

    status = await finished(loom, await run(loom, process))

    assert status["output"]["done"]["body"]["path"] == "/echo?from=redirect"
    assert site.paths() == ["/redirect/home", "/echo?from=redirect"]


@pytest.mark.parametrize(
    ("hop", "address"), [("private", "10.0.0.1"), ("metadata", "169.254.169.254")]
)
async def test_a_redirect_to_an_inside_address_is_refused_before_connecting_to_it(
    loom: Loom, site: Site, connects: list[str], hop: str, address: str
) -> None:
    process = await save(loom, [call(site.url + f"/redirect/{hop}"), END], CALL_THEN_END)

    status = await finished(loom, await run(loom, process))

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

    status = await finished(loom, await run(loom, process))

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
    status = await finished(loom, execution_id)

    assert status["status"] == "failed"
    assert status["error"].startswith("url must")
    assert status["nodes"]["call"]["attempts"] == 1  # a bad URL is not worth retrying
    assert connects == []


# --- the outbound guard, as a user meets it ---------------------------------------------------


async def test_loopback_is_refused_when_loom_http_allow_does_not_list_it(
    tmp_path: Path, clock: Clock, site: Site, connects: list[str]
) -> None:
    strict = await _open(tmp_path, clock, allow=None)
    try:
        port = site.url.rsplit(":", 1)[1]
        by_address = await save(strict, [call(site.url + "/echo"), END], CALL_THEN_END)
        by_name = await save(strict, [call(f"http://localhost:{port}/echo"), END], CALL_THEN_END)

        refused_address = await finished(strict, await run(strict, by_address))
        refused_name = await finished(strict, await run(strict, by_name))

        assert refused_address["error"].startswith("refused to connect to 127.0.0.1")
        assert refused_name["error"].startswith("refused to connect to 'localhost' (")
        assert "loopback" in refused_name["error"]
        assert site.requests == []
        assert connects == []
    finally:
        await strict.stop()


async def test_a_host_name_listed_in_loom_http_allow_is_reachable(
    tmp_path: Path, clock: Clock, site: Site
) -> None:
    allowing = await _open(tmp_path, clock, allow="localhost")
    try:
        port = site.url.rsplit(":", 1)[1]
        process = await save(allowing, [call(f"http://localhost:{port}/echo"), END], CALL_THEN_END)

        status = await finished(allowing, await run(allowing, process))

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
    loom: Loom, clock: Clock, site: Site
) -> None:
    site.failures_left = 2
    process = await save(loom, [call(site.url + "/flaky", retry=RETRY), END], CALL_THEN_END)
    execution_id = await run(loom, process)

    await until(lambda: has_event(loom, execution_id, "NodeFailed", attempt=1), "attempt 1")
    await asyncio.sleep(0.1)
    assert len(site.requests) == 1  # nothing happens before the clock reaches the retry
    await advance(loom, clock, 10)
    await until(lambda: has_event(loom, execution_id, "NodeFailed", attempt=2), "attempt 2")
    await advance(loom, clock, 30)
    status = await finished(loom, execution_id)

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
    tmp_path: Path, clock: Clock, site: Site
) -> None:
    site.failures_left = 1
    first = await _open(tmp_path, clock)
    process = await save(first, [call(site.url + "/flaky", retry=RETRY), END], CALL_THEN_END)
    execution_id = await run(first, process)
    await until(lambda: has_event(first, execution_id, "NodeFailed", attempt=1), "attempt 1")
    await first.stop()

    second = await _open(tmp_path, clock)
    try:
        await advance(second, clock, 10)
        status = await finished(second, execution_id)

        assert status["status"] == "completed"
        assert attempts(await events(second, execution_id))[-2:] == [
            ("NodeExecuting", 2, at(10), None),
            ("NodeCompleted", 2, at(10), None),
        ]
        assert len(site.requests) == 2
    finally:
        await second.stop()


async def test_an_execution_fails_when_its_own_timeout_passes(loom: Loom, clock: Clock) -> None:
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

    await advance(loom, clock, 4)
    await asyncio.sleep(0.1)
    assert (await events(loom, execution_id))[-1]["type"] == "NodeExecuting"
    await advance(loom, clock, 1)
    status = await finished(loom, execution_id)

    history = await events(loom, execution_id)
    assert history[0]["data"]["timeout_s"] == 5
    assert status["status"] == "failed"
    assert status["error"] == "the execution timed out after 5 s"
    assert (history[-1]["type"], history[-1]["at"]) == ("ExecutionFailed", at(5))
    await advance(loom, clock, 60)
    await asyncio.sleep(0.1)
    assert len(await events(loom, execution_id)) == len(history)  # the delay never fires
    assert await replays(loom, execution_id)


async def test_an_execution_timeout_stops_an_http_call_in_flight(
    loom: Loom, clock: Clock, site: Site
) -> None:
    process = await save(loom, [call(site.url + "/slow"), END], CALL_THEN_END)
    execution_id = await run(loom, process, timeout_s=30)
    await until(lambda: asyncio.sleep(0, site.arrived.is_set()), "the call to arrive")

    await advance(loom, clock, 30)
    status = await finished(loom, execution_id)
    site.release.set()
    await asyncio.sleep(0.3)

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
    status = await finished(loom, execution_id)

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

    status = await finished(loom, await run(loom, process))

    assert status["status"] == "failed"
    assert status["error"].startswith("HTTP 500 from GET")
    assert status["failed_element"] == "call"
    assert "done" not in status["nodes"]  # never reached


# --- cancel -----------------------------------------------------------------------------------


async def test_cancel_during_a_delay_stops_its_timer(loom: Loom, clock: Clock) -> None:
    process = await save(
        loom,
        [{"key": "wait", "type": "delay", "params": {"seconds": 60}}, END],
        [("start", "wait"), ("wait", "done")],
    )
    execution_id = await run(loom, process)
    await until(lambda: has_event(loom, execution_id, "NodeExecuting", element="wait"), "wait")

    cancelled = await loom.executions.cancel("acme", "carol", execution_id)
    await advance(loom, clock, 120)
    await asyncio.sleep(0.1)
    status = await finished(loom, execution_id)

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
    await until(lambda: asyncio.sleep(0, site.arrived.is_set()), "the call to arrive")

    await loom.executions.cancel("acme", "carol", execution_id)
    status = await finished(loom, execution_id)
    site.release.set()
    await asyncio.sleep(0.3)

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
    await until(lambda: asyncio.sleep(0, site.arrived.is_set()), "the call to arrive")
    token = ("acme", execution_id, "call", 1)

    # Hold the execution's lock (engine internals, to order the race): the cancel queues
    # first, then the answer comes back and queues behind it.
    async with loom.engine._lock(("acme", execution_id)):
        cancelling = asyncio.create_task(loom.executions.cancel("acme", "carol", execution_id))
        await asyncio.sleep(0.05)
        site.release.set()
        await until(lambda: asyncio.sleep(0, loom.engine._calls.answered(token)), "the answer")
    await cancelling
    await until(lambda: has_event(loom, execution_id, "EffectDiscarded"), "the discard")

    history = await events(loom, execution_id)
    assert [e["type"] for e in history[-2:]] == ["ExecutionCancelled", "EffectDiscarded"]
    discarded = history[-1]
    assert discarded["element"] == "call"
    assert discarded["data"]["attempt"] == 1
    assert discarded["data"]["output"]["body"] == {"slow": True}
    assert discarded["data"]["error"] is None
    status = await finished(loom, execution_id)

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
    await finished(loom, execution_id)

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
