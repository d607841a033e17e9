"""Re-run from an element: reuse what came before it, run live from it.

The process calls a real server on loopback first (`fetch`), so "no side effect
runs again" is checked where it matters: the server must see no second request.
Through the service, the REST route and `loom rerun`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.cli import main
from services.usecases.errors import Invalid, NotFound
from tests.harness.api import auth as harness_auth
from tests.harness.looms import settings as harness_settings
from tests.harness.looms import sqlite_url
from tests.harness.replays import replays
from tests.harness.site import Site
from tests.harness.waits import until_finished
from tests.support import SECRET

pytestmark = pytest.mark.usefixtures("connects")


@pytest.fixture
def server(site: Site) -> str:
    """The site's url: /fetch answers a lead, anything else echoes what it was sent."""
    site.answer("/fetch", lambda site, _: {"lead": {"id": 7, "score": 40}, "n": len(site.requests)})
    return site.url


def settings(tmp_path: Path) -> Settings:
    return harness_settings(sqlite_url(tmp_path), LOOM_HTTP_ALLOW="127.0.0.1")


@pytest.fixture
async def loom(tmp_path: Path) -> AsyncIterator[Loom]:
    loom = Loom(settings(tmp_path))
    await loom.start()
    yield loom
    await loom.stop()


def definition(server: str, notify_body: dict[str, str] | None = None) -> dict[str, Any]:
    """start → fetch (http) → shape → notify (http) → done."""
    body = notify_body or {"score": "{{ input.score }}"}
    return {
        "project": "Sales",
        "app": "Leads",
        "name": "Enrich",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {
                        "key": "fetch",
                        "type": "http",
                        "params": {"url": server + "/fetch?id={{ input.id }}"},
                    },
                    {
                        "key": "shape",
                        "type": "transform",
                        "params": {"output": {"score": "input.body.lead.score * 2"}},
                    },
                    {
                        "key": "notify",
                        "type": "http",
                        "params": {"method": "POST", "url": server + "/notify", "body": body},
                    },
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "fetch"},
                    {"source": "fetch", "target": "shape"},
                    {"source": "shape", "target": "notify"},
                    {"source": "notify", "target": "done"},
                ],
            }
        ],
    }


def without_fetch(server: str) -> dict[str, Any]:
    d = definition(server)
    thread = d["threads"][0]
    thread["elements"] = [e for e in thread["elements"] if e["key"] != "fetch"]
    thread["elements"][1]["params"] = {"output": {"score": "input.score"}}
    thread["connections"] = [{"source": "start", "target": "shape"}, *thread["connections"][2:]]
    return d


async def original_run(loom: Loom, server: str, settle: bool = True) -> tuple[str, str]:
    saved = await loom.processes.save("acme", "alice", definition(server))
    started = await loom.executions.start("acme", "alice", saved["process_id"], None, {"id": 7})
    status = await until_finished(loom, started.execution_id, settle=settle)
    assert status["status"] == "completed"
    return str(saved["process_id"]), started.execution_id


async def started_event(loom: Loom, execution_id: str) -> dict[str, Any]:
    """The execution's first event, as the API sends it."""
    events = await loom.executions.events("acme", execution_id)
    assert events[0].type == "ExecutionStarted"
    event: dict[str, Any] = msgspec.to_builtins(events[0])
    return event


# --- the service --------------------------------------------------------------------------


async def test_a_rerun_from_the_middle_reuses_the_http_answer_and_calls_only_what_follows(
    loom: Loom, server: str, site: Site
) -> None:
    _, original_id = await original_run(loom, server)
    original = await loom.executions.status("acme", original_id)
    assert site.paths() == ["/fetch?id=7", "/notify"]

    again = await loom.executions.rerun("acme", "bob", original_id, "shape")
    status = await until_finished(loom, again.execution_id)

    assert again.rerun_of == original_id and again.from_ == "shape"
    assert status["status"] == "completed"
    assert site.paths() == ["/fetch?id=7", "/notify", "/notify"]
    assert site.bodies()[-1] == {"score": 80}
    assert status["output"] == original.output
    assert (status["rerun_of"], status["from"]) == (original_id, "shape")
    started = await started_event(loom, again.execution_id)
    assert started["actor"] == "bob"
    assert started["data"]["rerun_of"] == original_id
    assert started["data"]["from_element"] == "shape"
    assert started["data"]["input"] == {"id": 7}
    assert started["data"]["reused"] == {
        "start": {"output": {"id": 7}, "port": "out"},
        "fetch": {"output": original.nodes["fetch"].output, "port": "out"},
    }
    assert status["nodes"]["fetch"]["output"] == original.nodes["fetch"].output
    assert await replays(loom, again.execution_id)


async def test_a_rerun_of_a_rerun_still_reuses_the_first_answer(
    loom: Loom, server: str, site: Site
) -> None:
    _, original_id = await original_run(loom, server)
    first = await loom.executions.rerun("acme", "bob", original_id, "notify")
    await until_finished(loom, first.execution_id)

    second = await loom.executions.rerun("acme", "bob", first.execution_id, "shape")
    status = await until_finished(loom, second.execution_id)

    assert status["status"] == "completed"
    assert site.paths().count("/fetch?id=7") == 1


async def test_a_rerun_on_a_newer_version_runs_the_new_definition_from_the_element(
    loom: Loom, server: str, site: Site
) -> None:
    process_id, original_id = await original_run(loom, server)
    await loom.processes.save(
        "acme",
        "alice",
        definition(server, {"score": "{{ input.score }}", "v": "{{ 2 }}"}),
        process_id=process_id,
        expected_version=1,
    )

    again = await loom.executions.rerun("acme", "bob", original_id, "notify", version=2)
    status = await until_finished(loom, again.execution_id)

    assert status["version"] == 2
    assert (site.paths()[-1], site.bodies()[-1]) == ("/notify", {"score": 80, "v": 2})
    assert site.paths().count("/fetch?id=7") == 1


async def test_a_rerun_with_a_new_input_feeds_it_to_the_trigger(
    loom: Loom, server: str, site: Site
) -> None:
    _, original_id = await original_run(loom, server)

    again = await loom.executions.rerun("acme", "bob", original_id, "notify", input={"id": 8})
    status = await until_finished(loom, again.execution_id)

    started = await started_event(loom, again.execution_id)
    assert started["data"]["input"] == {"id": 8}
    assert "start" not in started["data"]["reused"]
    assert status["nodes"]["start"]["output"] == {"id": 8}
    assert site.paths().count("/fetch?id=7") == 1


async def test_a_version_lacking_an_element_whose_output_would_be_reused_is_refused(
    loom: Loom, server: str
) -> None:
    process_id, original_id = await original_run(loom, server)
    await loom.processes.save(
        "acme", "alice", without_fetch(server), process_id=process_id, expected_version=1
    )
    await loom.projector.settled()
    before = await loom.executions.list("acme", None, None, 50, None)

    with pytest.raises(Invalid) as refused:
        await loom.executions.rerun("acme", "bob", original_id, "shape", version=2)

    assert refused.value.key == "fetch"
    assert refused.value.extra["keys"] == ["fetch"]
    assert "'fetch'" in refused.value.detail
    await loom.projector.settled()
    assert await loom.executions.list("acme", None, None, 50, None) == before


async def test_an_unknown_element_is_refused_naming_it(loom: Loom, server: str) -> None:
    _, original_id = await original_run(loom, server)

    with pytest.raises(Invalid) as refused:
        await loom.executions.rerun("acme", "bob", original_id, "nope")

    assert refused.value.key == "nope"


async def test_another_tenants_execution_cannot_be_rerun(loom: Loom, server: str) -> None:
    _, original_id = await original_run(loom, server)

    with pytest.raises(NotFound):
        await loom.executions.rerun("globex", "mallory", original_id, "shape")
    with pytest.raises(NotFound):
        await loom.executions.rerun("acme", "bob", "not-an-id", "shape")


async def test_an_error_branch_taken_before_the_element_is_reused_as_taken(
    loom: Loom, server: str
) -> None:
    saved = await loom.processes.save(
        "acme",
        "alice",
        {
            "project": "Sales",
            "app": "Leads",
            "name": "Fallback",
            "threads": [
                {
                    "key": "main",
                    "elements": [
                        {"key": "start", "type": "trigger"},
                        {"key": "fetch", "type": "http", "params": {"url": "http://10.0.0.1/"}},
                        {"key": "ok", "type": "end"},
                        {
                            "key": "note",
                            "type": "transform",
                            "params": {"output": {"tries": "input.attempts"}},
                        },
                        {"key": "done", "type": "end"},
                    ],
                    "connections": [
                        {"source": "start", "target": "fetch"},
                        {"source": "fetch", "target": "ok"},
                        {"source": "fetch", "source_port": "error", "target": "note"},
                        {"source": "note", "target": "done"},
                    ],
                }
            ],
        },
    )
    first = await loom.executions.start("acme", "alice", saved["process_id"], None, {})
    original = await until_finished(loom, first.execution_id)
    assert original["output"] == {"done": {"tries": 1}}

    again = await loom.executions.rerun("acme", "bob", first.execution_id, "note")
    status = await until_finished(loom, again.execution_id)

    started = await started_event(loom, again.execution_id)
    assert started["data"]["reused"]["fetch"]["port"] == "error"
    assert status["output"] == {"done": {"tries": 1}}
    assert status["nodes"]["ok"]["state"] == "skipped"
    assert await replays(loom, again.execution_id)


# --- the REST route -----------------------------------------------------------------------------


def auth(tenant: str = "acme", sub: str = "bob") -> dict[str, str]:
    return harness_auth(tenant, sub)


async def test_the_rerun_route_answers_202_422_and_404(
    tmp_path: Path, server: str, site: Site
) -> None:
    loom = Loom(settings(tmp_path))
    async with AsyncTestClient(app=web_app(loom)) as client:
        _, original_id = await original_run(loom, server, settle=False)
        url = f"/api/v1/executions/{original_id}/rerun"

        accepted = await client.post(url, json={"from": "shape"}, headers=auth())
        unknown = await client.post(url, json={"from": "nope"}, headers=auth())
        no_from = await client.post(url, json={"version": 1}, headers=auth())
        theirs = await client.post(url, json={"from": "shape"}, headers=auth("globex"))
        no_version = await client.post(url, json={"from": "shape", "version": 9}, headers=auth())

        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert (body["rerun_of"], body["from"]) == (original_id, "shape")
        status = await until_finished(loom, body["execution_id"], settle=False)
        assert status["status"] == "completed"
        assert status["started_by"] == "bob"
        assert (unknown.status_code, unknown.json()["key"]) == (422, "nope")
        assert no_from.status_code in (400, 422)
        assert theirs.status_code == 404
        assert no_version.status_code == 404
        assert site.paths().count("/fetch?id=7") == 1


async def test_the_start_route_takes_an_execution_timeout(tmp_path: Path, server: str) -> None:
    loom = Loom(settings(tmp_path))
    async with AsyncTestClient(app=web_app(loom)) as client:
        saved = await loom.processes.save("acme", "alice", definition(server))
        body = {"process_id": saved["process_id"], "input": {"id": 7}}

        started = await client.post(
            "/api/v1/executions", json=body | {"timeout_s": 120}, headers=auth()
        )
        refused = await client.post(
            "/api/v1/executions", json=body | {"timeout_s": 0}, headers=auth()
        )

        assert started.status_code == 202, started.text
        assert refused.status_code in (400, 422)
        execution_id = started.json()["execution_id"]
        assert (await started_event(loom, execution_id))["data"]["timeout_s"] == 120
        assert (await until_finished(loom, execution_id, settle=False))["status"] == "completed"


# --- loom rerun ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(loom: Loom) -> AsyncIterator[str]:
    config = uvicorn.Config(web_app(loom), host="127.0.0.1", port=0, log_config=None)
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    try:
        while not served.started:
            await asyncio.sleep(0.02)
        port = served.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        served.should_exit = True
        await task


async def test_loom_rerun_starts_a_rerun_through_the_running_api(
    tmp_path: Path,
    server: str,
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LOOM_JWT_SECRET", SECRET)
    loom = Loom(settings(tmp_path))
    async with serving(loom) as base:
        _, original_id = await original_run(loom, server)
        capsys.readouterr()

        code = await asyncio.to_thread(
            main,
            [
                "rerun",
                "--tenant",
                "acme",
                original_id,
                "--from",
                "shape",
                "--sub",
                "carol",
                "--url",
                base,
            ],
        )
        answer = msgspec.json.decode(capsys.readouterr().out)
        refused = await asyncio.to_thread(
            main, ["rerun", "--tenant", "acme", original_id, "--from", "nope", "--url", base]
        )
        refusal = msgspec.json.decode(capsys.readouterr().out)

        assert code == 0
        assert answer["rerun_of"] == original_id
        status = await until_finished(loom, answer["execution_id"])
        assert (status["status"], status["started_by"], status["from"]) == (
            "completed",
            "carol",
            "shape",
        )
        assert refused == 1
        assert refusal["key"] == "nope"
        assert site.paths().count("/fetch?id=7") == 1
