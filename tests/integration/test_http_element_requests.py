"""The `http` element against a real server on loopback: templates, answers, size caps,
timeouts, redirects, and the outbound guard as a user meets it.

The server is tests/harness/site.py's; Loom reaches it only because LOOM_HTTP_ALLOW
lists 127.0.0.1. Every socket this module's code opens is checked to be a loopback
one: the guard's refusals of 10.0.0.1 or 169.254.169.254 happen before any
connection, and this module would fail rather than send them traffic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domain.ports import EffectFailed
from infra.http_client import HttpxRequester
from infra.outbound_guard import OutboundRefused
from services.bootstrap import Loom
from tests.harness.clock import MovableClock
from tests.harness.looms import open_on_clock
from tests.harness.processes import CALL_THEN_END, END, call, run, save
from tests.harness.replays import rebuilt, replays
from tests.harness.site import HUGE, Site
from tests.harness.waits import until_finished

pytestmark = pytest.mark.usefixtures("connects")


@pytest.fixture
def loom(clocked_loom: Loom) -> Loom:
    return clocked_loom


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
    strict = await open_on_clock(tmp_path, clock, allow=None)
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
    allowing = await open_on_clock(tmp_path, clock, allow="localhost")
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
