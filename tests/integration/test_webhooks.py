"""Triggers in the definition, webhooks that start processes, start-and-wait, archive.

Against the whole app on real SQLite and PostgreSQL; one test calls a hook over
real HTTP (uvicorn on a loopback port), as a sender out there would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.support import SECRET, SECRETS_KEY

H = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}


def process(triggers: list[dict[str, Any]], *, fail: bool = False) -> dict[str, Any]:
    """trigger → shape (the hook's body, its query, a header) → done; or a fail."""
    middle = (
        {"key": "shape", "type": "fail", "params": {"message": "refused"}}
        if fail
        else {
            "key": "shape",
            "type": "transform",
            "params": {
                "output": {
                    "body": "input.body",
                    "query": "input.query",
                    "headers": "input.headers",
                }
            },
        }
    )
    return {
        "project": "Hooks",
        "app": "In",
        "name": "Orders",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    middle,
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "shape"},
                    {"source": "shape", "target": "done"},
                ],
            }
        ],
        "triggers": triggers,
    }


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    env = {
        "LOOM_DATABASE_URL": database_url,
        "LOOM_JWT_SECRET": SECRET,
        "LOOM_SECRETS_KEY": SECRETS_KEY,
    }
    app = web_app(Loom(Settings.from_env(env)))
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as test_client:
        yield test_client


async def _save(client: AsyncTestClient[Any], body: dict[str, Any]) -> dict[str, Any]:
    saved = await client.post("/api/v1/processes", json=body, headers=H)
    assert saved.status_code == 201, saved.text
    answer: dict[str, Any] = saved.json()
    return answer


def _url(saved: dict[str, Any], key: str) -> str:
    url: str = next(t["url"] for t in saved["triggers"] if t["key"] == key)
    return url


async def _finished(client: AsyncTestClient[Any], execution_id: str) -> dict[str, Any]:
    for _ in range(500):
        status = (await client.get(f"/api/v1/executions/{execution_id}/status", headers=H)).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            return dict(status)
        await asyncio.sleep(0.02)
    raise AssertionError("not finished")


async def _only_execution(client: AsyncTestClient[Any], process_id: str, execution_id: str) -> None:
    """Once the list shows `execution_id` (it is eventually consistent), it is the only one."""
    for _ in range(500):
        page = await client.get(f"/api/v1/executions?process_id={process_id}", headers=H)
        ids = [item["execution_id"] for item in page.json()["items"]]
        if execution_id in ids:
            assert ids == [execution_id]
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{execution_id} never listed")


# --- triggers in the definition ---------------------------------------------------------------


async def test_the_save_and_the_read_list_each_trigger_with_its_url_or_next_tick(
    client: AsyncTestClient[Any],
) -> None:
    saved = await _save(
        client,
        process(
            [
                {"key": "orders", "type": "webhook"},
                {
                    "key": "nightly",
                    "type": "schedule",
                    "cron": "0 2 * * *",
                    "timezone": "Asia/Tokyo",
                },
            ]
        ),
    )

    hook, schedule = saved["triggers"]
    assert hook["url"].startswith("/hooks/") and len(hook["url"]) >= len("/hooks/") + 22
    assert schedule["next_at"].endswith("17:00:00.000000Z")  # 02:00 in Tokyo
    read = (await client.get(f"/api/v1/processes/{saved['process_id']}", headers=H)).json()
    assert read["triggers"] == saved["triggers"]


async def test_a_kept_trigger_keeps_its_url_across_versions_and_hooks_are_unique(
    client: AsyncTestClient[Any],
) -> None:
    first = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    other = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    again = await client.put(
        f"/api/v1/processes/{first['process_id']}",
        json=process([{"key": "orders", "type": "webhook", "respond": "output"}])
        | {"expected_version": 1},
        headers=H,
    )

    assert again.status_code == 200, again.text
    assert _url(again.json(), "orders") == _url(first, "orders")
    assert _url(other, "orders") != _url(first, "orders")


@pytest.mark.parametrize(
    ("triggers", "says"),
    [
        ([{"key": "x", "type": "carrier-pigeon"}], "triggers[0].type"),
        ([{"key": "x", "type": "schedule", "cron": "0 2 * * *", "every_s": 5}], "exactly one"),
        ([{"key": "x", "type": "schedule"}], "exactly one"),
        ([{"key": "x", "type": "schedule", "cron": "0 0 31 2 *"}], "not a schedule that fires"),
        ([{"key": "x", "type": "schedule", "cron": "every day"}], "5 fields"),
        ([{"key": "x", "type": "schedule", "every_s": 5, "timezone": "Mars/Olympus"}], "timezone"),
        ([{"key": "x", "type": "webhook"}, {"key": "x", "type": "webhook"}], "repeats"),
        ([{"key": "x", "type": "webhook", "secret": "lower"}], "secret must name"),
    ],
)
async def test_a_bad_trigger_is_refused_at_save_and_nothing_is_saved(
    client: AsyncTestClient[Any], triggers: list[dict[str, Any]], says: str
) -> None:
    refused = await client.post("/api/v1/processes", json=process(triggers), headers=H)

    assert refused.status_code == 422, refused.text
    assert says in refused.json()["detail"]
    assert (await client.get("/api/v1/processes", headers=H)).json() == []


# --- webhooks ----------------------------------------------------------------------------------


async def test_a_webhook_call_starts_the_process_with_body_query_and_clean_headers(
    client: AsyncTestClient[Any],
) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))

    called = await client.post(
        f"{_url(saved, 'orders')}?ref=42",
        json={"order": 7},
        headers={"X-Shop": "north", "Authorization": "Bearer theirs", "Cookie": "a=b"},
    )

    assert called.status_code == 202, called.text
    status = await _finished(client, called.json()["execution_id"])
    shaped = status["output"]["done"]
    assert shaped["body"] == {"order": 7}
    assert shaped["query"] == {"ref": "42"}
    assert shaped["headers"]["x-shop"] == "north"
    assert not {"authorization", "cookie"} & set(shaped["headers"])
    assert status["started_by"] == "webhook:orders"
    assert status["trigger"] == {"type": "webhook", "key": "orders"}


async def test_a_body_that_is_not_json_is_kept_as_text(client: AsyncTestClient[Any]) -> None:
    saved = await _save(client, process([{"key": "form", "type": "webhook"}]))

    called = await client.post(
        _url(saved, "form"), content=b"name=ada&x=1", headers={"Content-Type": "text/plain"}
    )

    status = await _finished(client, called.json()["execution_id"])
    assert status["output"]["done"]["body"] == "name=ada&x=1"


async def test_respond_output_answers_the_output_or_the_error(
    client: AsyncTestClient[Any],
) -> None:
    ok = await _save(client, process([{"key": "sync", "type": "webhook", "respond": "output"}]))
    bad = await _save(
        client, process([{"key": "sync", "type": "webhook", "respond": "output"}], fail=True)
    )

    answered = await client.post(_url(ok, "sync"), json={"n": 1})
    failed = await client.post(_url(bad, "sync"), json={"n": 1})

    assert answered.status_code == 200
    assert answered.json()["done"]["body"] == {"n": 1}
    assert failed.status_code == 502
    assert failed.json()["error"] == "refused" and failed.json()["execution_id"]


async def test_a_signed_hook_refuses_an_unsigned_or_wrongly_signed_call_and_starts_nothing(
    client: AsyncTestClient[Any],
) -> None:
    await client.post("/api/v1/secrets", json={"name": "SIGNING", "value": "whsec_1"}, headers=H)
    saved = await _save(client, process([{"key": "pay", "type": "webhook", "secret": "SIGNING"}]))
    body = b'{"amount": 5}'
    good = hmac.new(b"whsec_1", body, hashlib.sha256).hexdigest()
    url = _url(saved, "pay")

    unsigned = await client.post(url, content=body)
    wrong = await client.post(url, content=body, headers={"X-Loom-Signature": "sha256=" + "0" * 64})
    assert (unsigned.status_code, wrong.status_code) == (401, 401)

    signed = await client.post(url, content=body, headers={"X-Loom-Signature": f"sha256={good}"})
    assert signed.status_code == 202
    status = await _finished(client, signed.json()["execution_id"])
    assert "x-loom-signature" not in status["output"]["done"]["headers"]
    await _only_execution(client, saved["process_id"], signed.json()["execution_id"])


async def test_refused_calls_say_why_and_start_nothing(client: AsyncTestClient[Any]) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    url = _url(saved, "orders")

    assert (await client.get(url)).status_code == 405
    assert (await client.get(url)).headers["allow"] == "POST"
    assert (await client.post("/hooks/not-a-token", json={})).status_code == 404
    huge = await client.post(url, content=b"x" * (1024 * 1024 + 1))
    assert huge.status_code == 413
    accepted = await client.post(url, json={})
    await _only_execution(client, saved["process_id"], accepted.json()["execution_id"])


async def test_a_trigger_dropped_by_the_latest_version_stops_answering(
    client: AsyncTestClient[Any],
) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    url = _url(saved, "orders")
    dropped = await client.put(
        f"/api/v1/processes/{saved['process_id']}",
        json=process([]) | {"expected_version": 1},
        headers=H,
    )
    assert dropped.status_code == 200

    assert (await client.post(url, json={})).status_code == 404


async def test_an_idempotency_key_dedupes_a_retried_delivery(client: AsyncTestClient[Any]) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    url = _url(saved, "orders")

    first = await client.post(url, json={"n": 1}, headers={"Idempotency-Key": "evt_1"})
    again = await client.post(
        url, json={"n": 1}, headers={"Idempotency-Key": "evt_1", "X-Attempt": "2"}
    )
    other = await client.post(url, json={"n": 2}, headers={"Idempotency-Key": "evt_1"})

    assert again.status_code == 202
    assert first.json()["execution_id"] == again.json()["execution_id"]
    assert other.status_code == 409  # the same key for another body is a sender's bug
    await _only_execution(client, saved["process_id"], first.json()["execution_id"])


async def test_another_tenants_token_is_just_a_url_that_starts_its_own_process(
    client: AsyncTestClient[Any],
) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    globex = {"Authorization": f"Bearer {mint_token(SECRET, 'globex', 'gus')}"}

    called = await client.post(_url(saved, "orders"), json={}, headers=globex)

    # The token names acme's process; the caller's JWT is no part of it.
    status = await _finished(client, called.json()["execution_id"])
    assert status["process_id"] == saved["process_id"]
    listed = await client.get("/api/v1/executions", headers=globex)
    assert listed.json()["items"] == []


# --- start and wait, archive ------------------------------------------------------------------


async def test_start_and_wait_answers_the_status_once_it_ends(client: AsyncTestClient[Any]) -> None:
    saved = await _save(client, process([]))

    waited = await client.post(
        "/api/v1/executions?wait=10",
        json={"process_id": saved["process_id"], "input": {"body": 1, "query": {}, "headers": {}}},
        headers=H,
    )

    assert waited.status_code == 200
    assert waited.json()["status"] == "completed"
    assert waited.json()["output"]["done"]["body"] == 1
    refused = await client.post(
        "/api/v1/executions?wait=61", json={"process_id": saved["process_id"]}, headers=H
    )
    assert refused.status_code == 400 and "wait" in refused.json()["detail"]


async def test_start_and_wait_answers_202_while_it_still_runs(
    client: AsyncTestClient[Any],
) -> None:
    body = process([])
    body["threads"][0]["elements"][1] = {"key": "shape", "type": "delay", "params": {"seconds": 60}}
    saved = await _save(client, body)
    began = time.monotonic()

    waited = await client.post(
        "/api/v1/executions?wait=0.3", json={"process_id": saved["process_id"]}, headers=H
    )

    assert waited.status_code == 202
    assert waited.json()["status"] == "running"
    assert time.monotonic() - began < 5


async def test_an_archived_process_stays_readable_and_starts_nothing(
    client: AsyncTestClient[Any],
) -> None:
    saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    pid = saved["process_id"]

    archived = await client.delete(f"/api/v1/processes/{pid}", headers=H)

    assert archived.status_code == 204
    read = (await client.get(f"/api/v1/processes/{pid}", headers=H)).json()
    assert read["archived_by"] == "alice" and read["archived_at"]
    listed = (await client.get("/api/v1/processes", headers=H)).json()
    assert listed[0]["archived_by"] == "alice"
    start = await client.post("/api/v1/executions", json={"process_id": pid}, headers=H)
    assert start.status_code == 409 and "archived" in start.json()["detail"]
    assert (await client.post(_url(saved, "orders"), json={})).status_code == 404
    again = await client.put(
        f"/api/v1/processes/{pid}", json=process([]) | {"expected_version": 1}, headers=H
    )
    assert again.status_code == 409
    assert (await client.delete(f"/api/v1/processes/{pid}", headers=H)).status_code == 204
    other = {"Authorization": f"Bearer {mint_token(SECRET, 'globex', 'gus')}"}
    assert (await client.delete(f"/api/v1/processes/{pid}", headers=other)).status_code == 404


# --- over real HTTP --------------------------------------------------------------------------


async def test_a_sender_out_there_reaches_a_hook_over_real_http(tmp_path: Any) -> None:
    env = {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/loom.db", "LOOM_JWT_SECRET": SECRET}
    config = uvicorn.Config(
        web_app(Loom(Settings.from_env(env))), host="127.0.0.1", port=0, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            saved = (
                await http.post(
                    "/api/v1/processes",
                    json=process([{"key": "sync", "type": "webhook", "respond": "output"}]),
                    headers=H,
                )
            ).json()
            answered = await http.post(_url(saved, "sync"), content=json.dumps({"hello": "world"}))
    finally:
        server.should_exit = True
        thread.join(timeout=15)

    assert answered.status_code == 200
    assert answered.json()["done"]["body"] == {"hello": "world"}


async def test_an_imported_process_answers_at_its_hook(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.cli import main

    source = {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/a/loom.db", "LOOM_JWT_SECRET": SECRET}
    async with AsyncTestClient(app=web_app(Loom(Settings.from_env(source)))) as client:
        saved = await _save(client, process([{"key": "orders", "type": "webhook"}]))
    exported = tmp_path / "acme.jsonl"
    monkeypatch.setenv("LOOM_DATABASE_URL", source["LOOM_DATABASE_URL"])
    assert main(["export", "--tenant", "acme", "--output", str(exported)]) == 0
    target = {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/b/loom.db", "LOOM_JWT_SECRET": SECRET}
    monkeypatch.setenv("LOOM_DATABASE_URL", target["LOOM_DATABASE_URL"])
    assert main(["import", str(exported)]) == 0
    capsys.readouterr()

    async with AsyncTestClient(app=web_app(Loom(Settings.from_env(target)))) as client:
        called = await client.post(_url(saved, "orders"), json={"n": 1})
        assert called.status_code == 202, called.text
        status = await _finished(client, called.json()["execution_id"])
    assert status["output"]["done"]["body"] == {"n": 1}


async def test_a_flood_on_one_hook_is_bounded_and_starts_nothing_more(tmp_path: Any) -> None:
    from services.usecases.tenant_limits import TenantOverLimit
    from services.usecases.webhooks import HookCall, WebhookService

    env = {"LOOM_DATABASE_URL": f"sqlite:///{tmp_path}/loom.db", "LOOM_JWT_SECRET": SECRET}
    loom = Loom(Settings.from_env(env))
    await loom.start()
    hooks = WebhookService(loom.processes, loom.executions, loom.secrets, max_in_flight=2)
    body = process([{"key": "slow", "type": "webhook", "respond": "output", "timeout_s": 30}])
    body["threads"][0]["elements"][1] = {"key": "shape", "type": "delay", "params": {"seconds": 60}}
    saved = await loom.processes.save("acme", "alice", body)
    token = _url(saved, "slow").removeprefix("/hooks/")

    def call(n: int) -> HookCall:
        return HookCall(token=token, method="POST", body=b"{}", query={"n": str(n)}, headers={})

    try:
        held = [asyncio.create_task(hooks.deliver(call(n))) for n in range(2)]
        for _ in range(500):  # both are in flight once both executions exist
            page = await loom.executions.list("acme", saved["process_id"], None, 50, None)
            if len(page.items) == 2:
                break
            await asyncio.sleep(0.02)

        with pytest.raises(TenantOverLimit) as refused:
            await hooks.deliver(call(3))

        assert refused.value.retry_after_s == 1
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        # Once those calls are over, the hook takes calls again: this one is let in and
        # waits on its execution (cut short here) instead of being refused.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hooks.deliver(call(4)), 0.5)
    finally:
        await loom.stop()
