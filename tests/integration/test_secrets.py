"""Secrets: saved encrypted, used by http and agent elements, shown nowhere.

Against the whole app on real SQLite and PostgreSQL, with a real loopback HTTP
server standing for the services a process calls (it echoes what it got back, as
some do) and for an agent's own OpenAI-compatible provider. Every channel a
value could leak through is read back: the API's answers, the events, the status,
the WebSocket, the export file, `loom audit`, the log lines and the raw bytes the
stores keep.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import LogCapture

from infra.auth import mint_token
from infra.secret_keys import new_master_key_text
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.cli import main
from tests.support import SECRET, SECRETS_KEY

VALUE = "sk-live-7f3a9c2e-never-show-me"
OTHER = "sk-second-4b1d-never-either"


def auth(tenant: str = "acme", sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, tenant, sub)}"}


# --- the world: a loopback service that echoes, and an LLM provider that wants a key -------


class Site:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.url = ""


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = json.loads(raw) if raw else None
            site.requests.append({"path": self.path, "headers": headers, "body": body})
            if self.path.startswith("/slow"):
                site.release.wait(10)
            if self.path.startswith("/refuse"):
                # A server that quotes the credential it refused.
                self._send(401, {"error": f"bad key {headers.get('authorization')}"})
            elif self.path.startswith("/v1/chat/completions"):
                self._chat(headers, body)
            else:
                self._send(200, {"path": self.path, "headers": headers, "body": body})

        def _chat(self, headers: dict[str, str], body: Any) -> None:
            if headers.get("authorization") != f"Bearer {VALUE}":
                self._send(401, {"error": {"message": "wrong key"}})
                return
            text = f"hello, your key is {VALUE}; you said {body['messages'][-1]['content']}"
            self._send(
                200,
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                },
            )

        def _send(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield site
    site.release.set()
    server.shutdown()
    server.server_close()


class App:
    def __init__(self, client: AsyncTestClient[Any], loom: Loom, env: dict[str, str]) -> None:
        self.client = client
        self.loom = loom
        self.env = env

    async def save(
        self,
        elements: list[dict[str, Any]],
        tenant: str = "acme",
        error_port: tuple[str, str] | None = None,
    ) -> Any:
        """A chain of `elements` after a trigger; with `error_port` (a, b), b follows a's
        error port instead of its output."""
        keys = ["start", *(e["key"] for e in elements)]
        connections = [{"source": a, "target": b} for a, b in itertools.pairwise(keys)]
        if error_port is not None:
            connections = [c for c in connections if c["target"] != error_port[1]]
            connections.append(
                {"source": error_port[0], "target": error_port[1], "source_port": "error"}
            )
        process = {
            "project": "P",
            "app": "A",
            "name": "Uses secrets",
            "threads": [
                {
                    "key": "main",
                    "elements": [{"key": "start", "type": "trigger"}, *elements],
                    "connections": connections,
                }
            ],
        }
        return await self.client.post("/api/v1/processes", json=process, headers=auth(tenant))

    async def run(self, process_id: str, tenant: str = "acme", input: Any = None) -> str:
        started = await self.client.post(
            "/api/v1/executions",
            json={"process_id": process_id, "input": input or {"n": 1}},
            headers=auth(tenant),
        )
        assert started.status_code == 202, started.text
        execution_id: str = started.json()["execution_id"]
        return execution_id

    async def finished(self, execution_id: str, tenant: str = "acme") -> dict[str, Any]:
        for _ in range(500):
            status = await self.client.get(
                f"/api/v1/executions/{execution_id}/status", headers=auth(tenant)
            )
            body: dict[str, Any] = status.json()
            if body["status"] in ("completed", "failed", "cancelled"):
                return body
            await asyncio.sleep(0.02)
        raise AssertionError(f"{execution_id} did not finish")

    async def events(self, execution_id: str) -> list[dict[str, Any]]:
        answer = await self.client.get(f"/api/v1/executions/{execution_id}/events", headers=auth())
        events: list[dict[str, Any]] = answer.json()
        return events


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log line of the test as configured in production, values masked or not."""
    import logging

    import structlog

    from infra.logging import configure_logging

    before = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("debug")
    capture = LogCapture()
    processors = list(structlog.get_config()["processors"])
    # Capture after the masking, as the renderer would have written it.
    structlog.configure(processors=[*processors[:-1], capture], cache_logger_on_first_use=False)
    yield capture
    structlog.configure(**before)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def app(database_url: str, tmp_path: Path, logs: LogCapture) -> AsyncIterator[App]:
    env = {
        "LOOM_DATABASE_URL": database_url,
        "LOOM_JWT_SECRET": SECRET,
        "LOOM_HTTP_ALLOW": "127.0.0.1",
    }
    if not database_url.startswith("sqlite:"):
        env["LOOM_SECRETS_KEY"] = SECRETS_KEY  # else ./data would get the key file
    loom = Loom(Settings.from_env(env))
    async with AsyncTestClient(app=web_app(loom), raise_server_exceptions=False) as client:
        yield App(client, loom, env)


async def _add(app: App, name: str = "API_KEY", value: str = VALUE, tenant: str = "acme") -> None:
    created = await app.client.post(
        "/api/v1/secrets", json={"name": name, "value": value}, headers=auth(tenant)
    )
    assert created.status_code == 201, created.text


# --- the API ---------------------------------------------------------------------------------


async def test_a_secret_is_listed_by_name_and_audit_fields_and_its_value_never_comes_back(
    app: App,
) -> None:
    created = await app.client.post(
        "/api/v1/secrets", json={"name": "API_KEY", "value": VALUE}, headers=auth()
    )
    assert created.status_code == 201
    assert created.json()["created_by"] == "alice"
    replaced = await app.client.put(
        "/api/v1/secrets/API_KEY", json={"value": OTHER}, headers=auth(sub="bob")
    )
    assert replaced.status_code == 200
    listed = await app.client.get("/api/v1/secrets", headers=auth())

    assert listed.json() == [
        {
            "name": "API_KEY",
            "created_at": created.json()["created_at"],
            "created_by": "alice",
            "modified_at": replaced.json()["modified_at"],
            "modified_by": "bob",
        }
    ]
    one = await app.client.get("/api/v1/secrets/API_KEY", headers=auth())
    assert one.json()["modified_by"] == "bob"
    for answer in (created, replaced, listed, one):
        assert VALUE not in answer.text and OTHER not in answer.text

    deleted = await app.client.delete("/api/v1/secrets/API_KEY", headers=auth())
    assert deleted.status_code == 204
    assert (await app.client.get("/api/v1/secrets/API_KEY", headers=auth())).status_code == 404
    assert (await app.client.get("/api/v1/secrets", headers=auth())).json() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "api_key", "value": "x"}, 422, "must match"),
        ({"name": "9LIVES", "value": "x"}, 422, "must match"),
        ({"name": "A" * 65, "value": "x"}, 422, "must match"),
        ({"name": "KEY", "value": 42}, 422, "must be a string"),
        ({"name": "KEY", "value": {"nested": "x"}}, 422, "must be a string"),
        ({"name": "KEY", "value": "x" * (64 * 1024 + 1)}, 422, "at most 65536 bytes"),
        ({"name": "KEY"}, 400, "value"),
        ({"name": "KEY", "value": "x", "extra": 1}, 400, "extra"),
    ],
)
async def test_a_bad_secret_is_refused_naming_the_rule_and_nothing_is_stored(
    app: App, body: dict[str, Any], status: int, says: str
) -> None:
    refused = await app.client.post("/api/v1/secrets", json=body, headers=auth())

    assert refused.status_code == status, refused.text
    assert says in refused.json()["detail"]
    assert (await app.client.get("/api/v1/secrets", headers=auth())).json() == []


async def test_a_name_taken_is_a_409_and_a_missing_one_a_404(app: App) -> None:
    await _add(app)
    again = await app.client.post(
        "/api/v1/secrets", json={"name": "API_KEY", "value": OTHER}, headers=auth()
    )
    assert again.status_code == 409
    for answer in (
        await app.client.put("/api/v1/secrets/NOPE", json={"value": "x"}, headers=auth()),
        await app.client.delete("/api/v1/secrets/NOPE", headers=auth()),
        await app.client.get("/api/v1/secrets/not-a-name", headers=auth()),
    ):
        assert answer.status_code == 404


async def test_another_tenants_secrets_are_not_there_for_it(app: App, site: Site) -> None:
    await _add(app)
    for answer in (
        await app.client.get("/api/v1/secrets/API_KEY", headers=auth("globex")),
        await app.client.put(
            "/api/v1/secrets/API_KEY", json={"value": "mine now"}, headers=auth("globex")
        ),
        await app.client.delete("/api/v1/secrets/API_KEY", headers=auth("globex")),
    ):
        assert answer.status_code == 404
    assert (await app.client.get("/api/v1/secrets", headers=auth("globex"))).json() == []

    # Nor can its processes use one.
    saved = await app.save(
        [
            {
                "key": "call",
                "type": "http",
                "params": {"url": f"{site.url}/echo?k={{{{ secrets.API_KEY }}}}"},
            }
        ],
        tenant="globex",
    )
    status = await app.finished(await app.run(saved.json()["process_id"], "globex"), "globex")
    assert status["status"] == "failed"
    assert status["nodes"]["call"]["error"] == "unknown secret API_KEY"
    assert site.requests == []
    # And acme's secret is as it was.
    assert (await app.client.get("/api/v1/secrets/API_KEY", headers=auth())).status_code == 200


# --- use in elements, and redaction everywhere ----------------------------------------------


async def test_an_http_element_sends_the_value_and_every_record_of_it_shows_stars(
    app: App, site: Site, logs: LogCapture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _add(app)
    saved = await app.save(
        [
            {
                "key": "call",
                "type": "http",
                "params": {
                    "method": "POST",
                    "url": f"{site.url}/slow?key={{{{ secrets.API_KEY }}}}",
                    "headers": {"Authorization": "Bearer {{ secrets.API_KEY }}"},
                    "body": {"token": "{{ secrets.API_KEY }}", "n": "{{ input.n }}"},
                },
            },
            {"key": "done", "type": "end"},
        ]
    )
    assert saved.status_code == 201, saved.text
    assert VALUE not in saved.text
    execution_id = await app.run(saved.json()["process_id"])
    token = mint_token(SECRET, "acme", "alice")
    with await app.client.websocket_connect(
        f"/ws/executions/{execution_id}", params={"token": token}
    ) as socket:
        for _ in range(500):
            if site.requests:
                break
            await asyncio.sleep(0.02)
        site.release.set()
        messages = [socket.receive_text(timeout=10)]
        while '"ExecutionCompleted"' not in messages[-1]:
            messages.append(socket.receive_text(timeout=10))
    status = await app.finished(execution_id)

    # The service got the value, in the query, the header and the body.
    sent = site.requests[0]
    assert sent["path"] == f"/slow?key={VALUE}"
    assert sent["headers"]["authorization"] == f"Bearer {VALUE}"
    assert sent["body"] == {"token": VALUE, "n": 1}
    # The recorded request shows where a secret went; the echoed answer is starred.
    events = await app.events(execution_id)
    executing = next(e for e in events if e["type"] == "NodeExecuting" and e["element"] == "call")
    assert executing["data"]["input"]["headers"] == {"Authorization": "Bearer ***"}
    assert executing["data"]["input"]["body"] == {"token": "***", "n": 1}
    echoed = status["output"]["done"]["body"]
    assert echoed["headers"]["authorization"] == "Bearer ***"
    assert echoed["path"] == "/slow?key=***"
    assert echoed["body"] == {"token": "***", "n": 1}
    assert len(messages) >= 2 and any("Bearer ***" in m for m in messages)
    # Not one channel holds the value: API answers, WebSocket, logs.
    assert VALUE not in json.dumps(events)
    assert VALUE not in json.dumps(status)
    assert not [m for m in messages if VALUE in m]
    assert not [e for e in logs.entries if VALUE in json.dumps(e, default=str)]
    # httpx logs every request's URL through the standard library: starred as it is written.
    written = capsys.readouterr().out
    assert "/slow?key=***" in written and VALUE not in written
    # Nor do the tools: the export file and the audit.
    exported = tmp_path / "export.jsonl"
    printed = _cli(app, ["export", "--tenant", "acme", "--output", str(exported)])
    assert exported.stat().st_size > 0 and VALUE not in exported.read_text()
    audit = _cli(app, ["audit", "--tenant", "acme", "--json", execution_id])
    assert "Bearer ***" in audit and VALUE not in audit + printed
    # And a replay decides the same without the secret (deleted meanwhile).
    await app.client.delete("/api/v1/secrets/API_KEY", headers=auth())
    assert "deterministic" in _cli(app, ["replay", "--tenant", "acme", execution_id])


async def test_a_value_quoted_in_an_error_is_starred_in_the_failure(app: App, site: Site) -> None:
    await _add(app)
    saved = await app.save(
        [
            {
                "key": "call",
                "type": "http",
                "params": {
                    "url": f"{site.url}/refuse",
                    "headers": {"Authorization": "{{ secrets.API_KEY }}"},
                },
            }
        ]
    )
    status = await app.finished(await app.run(saved.json()["process_id"]))

    assert status["status"] == "failed"
    assert site.requests[0]["headers"]["authorization"] == VALUE
    assert "***" in status["nodes"]["call"]["error"]
    assert VALUE not in json.dumps(status)


async def test_an_unknown_secret_fails_the_element_and_its_error_port_applies(
    app: App, site: Site
) -> None:
    saved = await app.save(
        [
            {
                "key": "call",
                "type": "http",
                "params": {"url": f"{site.url}/echo", "headers": {"X-Key": "{{ secrets.GONE }}"}},
            },
            {"key": "handled", "type": "end"},
        ],
        error_port=("call", "handled"),
    )
    process = saved.json()["process_id"]
    status = await app.finished(await app.run(process))

    assert status["status"] == "completed"
    assert status["output"]["handled"]["error"] == "unknown secret GONE"
    assert site.requests == []


@pytest.mark.parametrize(
    "params",
    [
        {"url": "http://example.com/{{ secrets[input.which] }}"},
        {"url": "http://example.com/{{ secrets.KEY + 'x' }}"},
        {"url": "http://example.com/", "headers": {"X": "{{ secrets.lower_case }}"}},
    ],
)
async def test_a_secret_chosen_or_built_by_data_is_refused_at_save(
    app: App, params: dict[str, Any]
) -> None:
    refused = await app.save([{"key": "call", "type": "http", "params": params}])

    assert refused.status_code == 422, refused.text
    assert refused.json()["key"] == "call"
    assert (await app.client.get("/api/v1/processes", headers=auth())).json() == []


async def test_secrets_are_refused_outside_http_and_agent_params(app: App) -> None:
    for element in (
        {"key": "t", "type": "transform", "params": {"expression": "secrets.API_KEY"}},
        {"key": "f", "type": "fail", "params": {"message": "{{ secrets.API_KEY }}"}},
    ):
        refused = await app.save([element])
        assert refused.status_code == 422, refused.text
        assert "secrets may be used only" in refused.json()["detail"]


async def test_an_agent_calls_its_own_provider_with_the_tenants_key(app: App, site: Site) -> None:
    await _add(app)
    agent = await app.client.post(
        "/api/v1/agents",
        json={
            "name": "Own provider",
            "model": "tiny",
            "base_url": f"{site.url}/v1",
            "api_key_secret": "API_KEY",
        },
        headers=auth(),
    )
    assert agent.status_code == 201, agent.text
    shown = await app.client.get(f"/api/v1/agents/{agent.json()['agent_id']}", headers=auth())
    assert shown.json()["api_key_secret"] == "API_KEY" and VALUE not in shown.text
    saved = await app.save(
        [
            {
                "key": "ask",
                "type": "agent",
                "params": {"agent_id": agent.json()["agent_id"], "prompt": "hi {{ input.n }}"},
            }
        ]
    )

    status = await app.finished(await app.run(saved.json()["process_id"]))

    assert status["status"] == "completed", status
    assert site.requests[0]["headers"]["authorization"] == f"Bearer {VALUE}"
    assert status["nodes"]["ask"]["output"]["text"] == "hello, your key is ***; you said hi 1"
    assert VALUE not in json.dumps(await app.events(status["execution_id"]))


async def test_an_agent_prompt_may_use_a_secret_and_the_record_shows_stars(
    app: App, site: Site
) -> None:
    await _add(app)
    agent = await app.client.post(
        "/api/v1/agents",
        json={
            "name": "A",
            "model": "tiny",
            "base_url": f"{site.url}/v1",
            "api_key_secret": "API_KEY",
        },
        headers=auth(),
    )
    saved = await app.save(
        [
            {
                "key": "ask",
                "type": "agent",
                "params": {
                    "agent_id": agent.json()["agent_id"],
                    "prompt": "the code is {{ secrets.API_KEY }}",
                },
            }
        ]
    )

    status = await app.finished(await app.run(saved.json()["process_id"]))

    sent = site.requests[0]["body"]["messages"][-1]["content"]
    assert sent == f"the code is {VALUE}"
    events = await app.events(status["execution_id"])
    executing = next(e for e in events if e["type"] == "NodeExecuting" and e["element"] == "ask")
    assert executing["data"]["input"]["prompt"] == "the code is ***"
    assert VALUE not in json.dumps(events)


# --- at rest -----------------------------------------------------------------------------------


async def test_no_stored_byte_holds_a_value_in_the_clear(
    app: App, site: Site, tmp_path: Path, postgres_connect_or_none: Any
) -> None:
    await _add(app)
    await _add(app, "SECOND", OTHER)
    saved = await app.save(
        [
            {
                "key": "call",
                "type": "http",
                "params": {
                    "url": f"{site.url}/echo",
                    "headers": {"X-Key": "{{ secrets.API_KEY }}"},
                },
            }
        ]
    )
    execution_id = await app.run(saved.json()["process_id"])
    await app.finished(execution_id)
    for _ in range(500):  # the read model's file or table holds the finished document
        stored = await asyncio.to_thread(app.loom.statuses.get, "acme", execution_id)
        if stored is not None and stored.status == "completed":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the read model never saved the finished execution")

    if app.env["LOOM_DATABASE_URL"].startswith("sqlite:"):
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert any(p.name == "secrets-key" for p in files)
        assert oct((tmp_path / "secrets-key").stat().st_mode & 0o777) == "0o600"
        blob = b"".join(p.read_bytes() for p in files)
        assert b"SECOND" in blob  # the names are there: the stores were read
    else:
        schema = app.env["LOOM_DATABASE_URL"].split("schema=")[1]
        with postgres_connect_or_none() as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            cells = [
                cell
                for (name,) in tables
                for row in conn.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
                for cell in row
            ]
        blob = b"".join(c if isinstance(c, bytes) else str(c).encode() for c in cells)
        assert b"SECOND" in blob
    for value in (VALUE, OTHER):
        assert value.encode() not in blob


@pytest.fixture
def postgres_connect_or_none(request: pytest.FixtureRequest, database_url: str) -> Any:
    if database_url.startswith("sqlite:"):
        return None
    return request.getfixturevalue("postgres_connect")


# --- the master key ----------------------------------------------------------------------------


async def test_rotating_the_master_key_keeps_every_secret_usable(
    app: App, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _add(app)
    await _add(app, tenant="globex", value=OTHER)
    old = app.env.get("LOOM_SECRETS_KEY")
    new = new_master_key_text()
    if old is None:  # the embedded default rotates its own key file
        key_file = Path(app.env["LOOM_DATABASE_URL"].removeprefix("sqlite:///")).parent
        before = (key_file / "secrets-key").read_text()
        rotated = _cli(app, ["secrets", "rotate-key"])
        assert (key_file / "secrets-key").read_text() != before
        assert not (key_file / "secrets-key.new").exists()
        env = app.env
    else:
        env = {**app.env, "LOOM_SECRETS_KEY": new}
        monkeypatch.setenv("LOOM_SECRETS_OLD_KEY", old)
        rotated = _cli(app, ["secrets", "rotate-key"], env)
        # The old key no longer opens them: a start with it is refused, clearly.
        refusal = main_with(env | {"LOOM_SECRETS_KEY": old})
        assert refusal is not None and "is not the one the secrets were stored with" in refusal
    assert "re-wrapped the data keys of 2 tenant(s)" in rotated

    loom = Loom(Settings.from_env(env))
    async with AsyncTestClient(app=web_app(loom), raise_server_exceptions=False) as client:
        restarted = App(client, loom, env)
        saved = await restarted.save(
            [
                {
                    "key": "call",
                    "type": "http",
                    "params": {"url": f"{site.url}/echo?k={{{{ secrets.API_KEY }}}}"},
                }
            ]
        )
        status = await restarted.finished(await restarted.run(saved.json()["process_id"]))
    assert status["status"] == "completed"
    assert site.requests[-1]["path"] == f"/echo?k={VALUE}"


def main_with(env: dict[str, str]) -> str | None:
    """The error a Loom started with `env` refuses to start with, or None if it starts."""
    from infra.secret_keys import SecretsKeyError

    loom = Loom(Settings.from_env(env))
    try:
        loom.secrets.check_master_key()
    except SecretsKeyError as exc:
        return str(exc)
    finally:
        loom.store.close()
    return None


async def test_a_wrong_master_key_is_refused_at_start_naming_it(app: App) -> None:
    await _add(app)
    wrong = {**app.env, "LOOM_SECRETS_KEY": new_master_key_text()}

    loom = Loom(Settings.from_env(wrong))
    with pytest.raises(Exception, match="is not the one the secrets were stored with"):
        await loom.start()
    loom.store.close()


def test_over_nats_a_missing_master_key_is_an_error_at_start() -> None:
    from infra.secret_keys import SecretsKeyError

    env = {"LOOM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "LOOM_NATS_URL": "nats://x"}
    with pytest.raises(SecretsKeyError, match="LOOM_SECRETS_KEY must be set"):
        Loom(Settings.from_env(env))


def _cli(app: App, argv: list[str], env: dict[str, str] | None = None) -> str:
    import contextlib
    import io
    import os

    out = io.StringIO()
    saved = dict(os.environ)
    os.environ.update(env or app.env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    text = out.getvalue()
    assert code == 0, text
    return text


async def test_an_agents_own_endpoint_is_reached_only_through_the_outbound_guard(
    app: App,
) -> None:
    agent = await app.client.post(
        "/api/v1/agents",
        json={"name": "Inside", "model": "tiny", "base_url": "http://169.254.169.254/v1"},
        headers=auth(),
    )
    assert agent.status_code == 201, agent.text
    saved = await app.save(
        [
            {
                "key": "ask",
                "type": "agent",
                "params": {"agent_id": agent.json()["agent_id"], "prompt": "hi"},
            }
        ]
    )

    status = await app.finished(await app.run(saved.json()["process_id"]))

    assert status["status"] == "failed"
    assert "169.254.169.254" in status["nodes"]["ask"]["error"]
    assert "refused" in status["nodes"]["ask"]["error"]
