"""The replay and audit tools on executions the engine really ran, on SQLite and PostgreSQL.

Every command runs in-process through `services.cli.main`, with LOOM_DATABASE_URL
pointing at the store the engine wrote; stdout is what a user would read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from domain.events import NodeCompleted
from domain.ports import Append, StoreUnavailable
from infra.auth import mint_token
from infra.settings import Settings
from infra.store import open_event_store
from services.bootstrap import Loom, open_status_store, web_app
from services.cli import main
from services.tools import archive as archive_tool
from tests.harness.waits import until_finished
from tests.support import SECRET

# --- an HTTP endpoint that counts the calls made to it -------------------------------


class _Hook(BaseHTTPRequestHandler):
    calls: list[Any] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"null")
        _Hook.calls.append(body)
        payload = json.dumps({"seen": body}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


# --- stores and recorded executions ---------------------------------------------------


def _url_in(postgres_url: str, schema: str) -> str:
    return f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/loom.db"
    return _url_in(
        request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")
    )


@pytest.fixture
def empty_url(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty store of the same kind (for import)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/other/loom.db"
        return
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema") + "_b"
    yield _url_in(url, schema)
    with request.getfixturevalue("postgres_connect")() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def qualify(threshold: int, notify_url: str | None = None) -> dict[str, Any]:
    """The contract's example; with `notify_url`, the false branch first calls it."""
    elements: list[dict[str, Any]] = [
        {"key": "start", "type": "trigger"},
        {"key": "score", "type": "transform", "params": {"output": {"score": "input.amount * 2"}}},
        {"key": "big", "type": "condition", "params": {"expression": f"input.score > {threshold}"}},
        {"key": "yes", "type": "end"},
        {"key": "no", "type": "end"},
    ]
    connections = [
        {"source": "start", "target": "score"},
        {"source": "score", "target": "big"},
        {"source": "big", "source_port": "true", "target": "yes"},
    ]
    if notify_url is None:
        connections.append({"source": "big", "source_port": "false", "target": "no"})
    else:
        elements.append(
            {
                "key": "notify",
                "type": "http",
                "params": {"method": "POST", "url": notify_url, "body": {"s": "{{ input.score }}"}},
            }
        )
        connections += [
            {"source": "big", "source_port": "false", "target": "notify"},
            {"source": "notify", "target": "no"},
        ]
    return {
        "project": "Sales",
        "app": "Leads",
        "name": "Qualify lead",
        "threads": [{"key": "main", "elements": elements, "connections": connections}],
    }


class Recorded(msgspec.Struct):
    url: str
    process_id: str
    big: str  # v1, amount 120: score 240, takes `yes`
    small: str  # v1, amount 10: score 20, takes `no`
    upgraded: str  # v2, amount 120: calls the hook, then `no`
    foreign: str  # another tenant's execution


@pytest.fixture
async def recorded(database_url: str, hook: str) -> Recorded:
    settings = Settings.from_env(
        {"LOOM_DATABASE_URL": database_url, "LOOM_HTTP_ALLOW": "127.0.0.1"}
    )
    loom = Loom(settings)
    await loom.start()
    try:
        saved = await loom.processes.save("acme", "alice", qualify(100))
        process_id = saved["process_id"]
        big = await loom.executions.start("acme", "alice", process_id, None, {"amount": 120})
        small = await loom.executions.start("acme", "bob", process_id, None, {"amount": 10})
        await loom.processes.save(
            "acme", "alice", qualify(1000, hook), process_id=process_id, expected_version=1
        )
        upgraded = await loom.executions.start("acme", "alice", process_id, 2, {"amount": 120})
        other = await loom.processes.save("globex", "gina", qualify(100))
        foreign = await loom.executions.start(
            "globex", "gina", other["process_id"], None, {"amount": 1}
        )
        for tenant, started in [("acme", big), ("acme", small), ("acme", upgraded)]:
            await until_finished(loom, started.execution_id, tenant)
        await until_finished(loom, foreign.execution_id, "globex")
        await loom.projector.settled()
    finally:
        await loom.stop()
    assert len(_Hook.calls) == 1  # only `upgraded` called out
    return Recorded(
        database_url,
        process_id,
        big.execution_id,
        small.execution_id,
        upgraded.execution_id,
        foreign.execution_id,
    )


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def loom_cli(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Runs `loom ARGS…` in-process against the recorded store: (exit code, stdout, stderr)."""
    monkeypatch.setenv("LOOM_DATABASE_URL", recorded.url)
    capsys.readouterr()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _timeline(cli: Cli, execution_id: str) -> list[dict[str, Any]]:
    code, out, _ = cli("audit", "--tenant", "acme", execution_id, "--json")
    assert code == 0
    return [json.loads(line) for line in out.splitlines()]


def _seq_of(rows: list[dict[str, Any]], type_: str, element: str) -> int:
    return next(r["seq"] for r in rows if r["type"] == type_ and r["element"] == element)


# --- audit and executions -------------------------------------------------------------


def test_audit_prints_the_timeline_with_who_did_what(loom_cli: Cli, recorded: Recorded) -> None:
    code, out, _ = loom_cli("audit", "--tenant", "acme", recorded.small)

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"execution {recorded.small}  process {recorded.process_id} v1")
    assert "started by bob" in lines[0]
    assert "ExecutionStarted" in lines[1] and "bob" in lines[1]
    assert any(
        "NodeCompleted" in line and "score" in line and '{"score":20}' in line for line in lines
    )
    assert any("NodeCompleted" in line and "big" in line and "-> false" in line for line in lines)
    assert "ExecutionCompleted" in lines[-1]


def test_audit_json_gives_one_line_per_event_in_order(loom_cli: Cli, recorded: Recorded) -> None:
    rows = _timeline(loom_cli, recorded.big)

    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["type"] == "ExecutionStarted" and rows[0]["actor"] == "alice"
    assert rows[0]["data"]["input"] == {"amount": 120}
    assert rows[-1]["type"] == "ExecutionCompleted"
    assert rows[-1]["data"]["output"] == {"yes": {"score": 240}}
    assert all(len(r["hash"]) == 64 for r in rows)


def test_executions_lists_a_tenants_executions_and_filters_them(
    loom_cli: Cli, recorded: Recorded
) -> None:
    code, out, _ = loom_cli("executions", "--tenant", "acme", "--json")
    listed = [json.loads(line) for line in out.splitlines()]

    assert code == 0
    assert [e["execution_id"] for e in listed] == [recorded.big, recorded.small, recorded.upgraded]
    assert {e["status"] for e in listed} == {"completed"}
    assert [e["version"] for e in listed] == [1, 1, 2]
    assert listed[1]["started_by"] == "bob"

    code, out, _ = loom_cli("executions", "--tenant", "acme", "--status", "failed")
    assert code == 0 and out == ""
    code, out, _ = loom_cli("executions", "--tenant", "acme", "--process", recorded.process_id)
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = loom_cli("executions", "--tenant", "globex")
    assert code == 0 and out.splitlines() == [out.splitlines()[0]]
    assert recorded.foreign in out


# --- replay -----------------------------------------------------------------------------


def test_replay_of_a_recorded_execution_is_deterministic(loom_cli: Cli, recorded: Recorded) -> None:
    for execution_id in (recorded.big, recorded.small, recorded.upgraded):
        code, out, _ = loom_cli("replay", "--tenant", "acme", execution_id)
        assert code == 0, out
        assert out.startswith("deterministic")
    assert len(_Hook.calls) == 1  # the recorded answer was replayed, nothing was called


def test_replay_all_replays_every_execution_with_progress_and_a_summary(
    loom_cli: Cli, recorded: Recorded
) -> None:
    code, out, err = loom_cli("replay", "--all", "--tenant", "acme")

    assert code == 0, out
    assert "replayed 3/3 executions, 0 not deterministic" in err
    assert "replayed 3 executions" in out and "3 deterministic, 0 not" in out
    assert "events/s" in out


def test_a_divergent_history_is_reported_at_its_first_diverging_event(
    loom_cli: Cli, recorded: Recorded
) -> None:
    length = len(_timeline(loom_cli, recorded.small))
    store = open_event_store(recorded.url)
    try:
        # Appended through the store, so the chain is sound: only the decisions diverge.
        stray = NodeCompleted(at="2030-01-01T00:00:00Z", actor="mallory", element="yes")
        store.append("acme", [Append(UUID(recorded.small), length, [stray])])
    finally:
        store.close()

    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.small)
    assert code == 1
    assert out.splitlines()[0] == (
        f"diverges at event {length + 1}: history has an event the code did not expect: "
        "element 'yes' attempt 1 is not in flight"
    )
    assert '"element":"yes"' in out.splitlines()[1]

    code, out, _ = loom_cli("replay", "--all", "--tenant", "acme")
    assert code == 1
    assert f"{recorded.small}: diverges at event {length + 1}" in out
    assert "2 deterministic, 1 not" in out
    code, out, _ = loom_cli("audit", "--verify", "--tenant", "acme", recorded.small)
    assert code == 0 and out.startswith("intact")


# --- what-if ----------------------------------------------------------------------------


def test_what_if_a_changed_condition_shows_where_the_paths_part_and_what_would_run(
    loom_cli: Cli, recorded: Recorded
) -> None:
    parting = _seq_of(_timeline(loom_cli, recorded.big), "NodeCompleted", "big")

    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.big, "--version", "2")

    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"what-if: execution {recorded.big} through version 2"
    assert lines[1] == f"paths part at event {parting}: the decision differs"
    assert '"port":"true"' in lines[2] and '"port":"false"' in lines[3]
    would_run = lines[lines.index("would run:") + 1]
    assert would_run.split()[:2] == ["notify", "running"]
    assert '"url":"http' in would_run and "not performed" in would_run
    would_not_run = lines[lines.index("would not run:") + 1]
    assert would_not_run.split()[:3] == ["yes", "skipped", "(history:"]
    assert "no effect was performed" in lines[-1]
    assert len(_Hook.calls) == 1  # nothing was called


def test_what_if_lists_elements_history_ran_that_now_wait_on_an_effect(
    loom_cli: Cli, recorded: Recorded
) -> None:
    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.small, "--version", "2")

    assert code == 1
    lines = out.splitlines()
    parting = _seq_of(_timeline(loom_cli, recorded.small), "NodeExecuting", "no")
    assert lines[1] == f"paths part at event {parting}: the decision differs"
    assert lines[lines.index("would run:") + 1].split()[0] == "notify"
    undecided = lines[lines.index("undecided (after an effect that would run):") + 1]
    assert undecided.split()[:3] == ["no", "pending", "(history:"]


def test_what_if_through_a_definition_file_and_through_the_same_definition(
    loom_cli: Cli, recorded: Recorded, tmp_path: Path
) -> None:
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(qualify(1000, "http://127.0.0.1:9/never")))
    code, out, _ = loom_cli(
        "replay", "--tenant", "acme", recorded.big, "--definition", str(changed)
    )
    assert code == 1
    assert "paths part at event" in out and "127.0.0.1:9/never" in out

    same = tmp_path / "same.json"
    same.write_text(json.dumps(qualify(100)))
    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.big, "--definition", str(same))
    assert code == 0, out
    assert "the paths do not part" in out
    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.big, "--version", "1")
    assert code == 0

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"threads": [{"key": "main", "elements": []}]}))
    code, _, err = loom_cli("replay", "--tenant", "acme", recorded.big, "--definition", str(broken))
    assert code == 2 and "the definition is not valid" in err
    code, _, err = loom_cli("replay", "--tenant", "acme", recorded.big, "--version", "7")
    assert code == 2 and "has no version 7" in err
    assert len(_Hook.calls) == 1


# --- time travel ------------------------------------------------------------------------


def test_state_shows_the_stack_elements_and_outputs_after_any_event(
    loom_cli: Cli, recorded: Recorded
) -> None:
    rows = _timeline(loom_cli, recorded.big)
    score_done = _seq_of(rows, "NodeCompleted", "score")

    code, out, _ = loom_cli("state", "--tenant", "acme", recorded.big, "--at", "1", "--json")
    first = json.loads(out)
    assert code == 0
    assert first["status"] == "running" and first["stack"] == ["start"]
    assert {n["state"] for n in first["nodes"].values()} == {"pending"}

    code, out, _ = loom_cli(
        "state", "--tenant", "acme", recorded.big, "--at", str(score_done), "--json"
    )
    middle = json.loads(out)
    assert middle["stack"] == ["big"]
    assert middle["nodes"]["score"] == {
        "state": "completed",
        "attempts": 1,
        "output": {"score": 240},
        "port": "out",
        "error": None,
        "wake_at": None,
    }
    assert middle["outputs"] == {"start": {"amount": 120}, "score": {"score": 240}}
    assert middle["event"]["type"] == "NodeCompleted" and middle["event"]["element"] == "score"

    code, out, _ = loom_cli("state", "--tenant", "acme", recorded.big)
    assert code == 0
    assert f"after event {len(rows)} of {len(rows)}" in out.splitlines()[0]
    assert "status: completed" in out and "stack (next first): (empty)" in out

    for bad in ("0", str(len(rows) + 1), "-3"):
        code, _, err = loom_cli("state", "--tenant", "acme", recorded.big, "--at", bad)
        assert code == 2 and f"at must be between 1 and {len(rows)}" in err


async def test_state_over_rest_is_the_same_time_travel(recorded: Recorded) -> None:
    settings = Settings.from_env({"LOOM_DATABASE_URL": recorded.url, "LOOM_JWT_SECRET": SECRET})
    acme = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
    globex = {"Authorization": f"Bearer {mint_token(SECRET, 'globex', 'gina')}"}
    base = f"/api/v1/executions/{recorded.big}/state"
    async with AsyncTestClient(app=web_app(Loom(settings))) as client:
        at_three = await client.get(f"{base}?at=3", headers=acme)
        last = await client.get(base, headers=acme)
        too_far = await client.get(f"{base}?at=999", headers=acme)
        not_a_number = await client.get(f"{base}?at=x", headers=acme)
        other_tenant = await client.get(base, headers=globex)
        unknown = await client.get("/api/v1/executions/nope/state", headers=acme)

    assert at_three.status_code == 200
    assert at_three.json()["at"] == 3 and at_three.json()["stack"] == ["score"]
    assert at_three.json()["nodes"]["start"]["state"] == "completed"
    assert last.json()["status"] == "completed"
    assert last.json()["output"] == {"yes": {"score": 240}}
    assert too_far.status_code == 422 and too_far.json()["key"] == "at"
    assert not_a_number.status_code == 400
    assert other_tenant.status_code == 404 and unknown.status_code == 404


# --- diff -------------------------------------------------------------------------------


def test_diff_lines_up_two_executions_and_shows_the_first_divergence(
    loom_cli: Cli, recorded: Recorded
) -> None:
    parting = _seq_of(_timeline(loom_cli, recorded.big), "NodeCompleted", "big")

    code, out, _ = loom_cli("diff", "--tenant", "acme", recorded.big, recorded.upgraded, "--json")
    report = json.loads(out)

    assert code == 1 and not report["same"]
    by_key = {e["key"]: e for e in report["elements"]}
    assert by_key["score"]["differs"] == []
    assert by_key["score"]["left"]["output"] == by_key["score"]["right"]["output"]
    assert by_key["big"]["differs"] == ["port"]
    assert by_key["yes"]["left"]["state"] == "completed"
    assert by_key["yes"]["right"]["state"] == "skipped"
    assert by_key["notify"]["left"] is None and by_key["notify"]["right"]["attempts"] == 1
    assert by_key["notify"]["right"]["duration_s"] >= 0
    assert report["first_divergence"]["seq"] == parting
    assert report["first_divergence"]["left"]["port"] == "true"
    assert report["first_divergence"]["right"]["port"] == "false"
    assert report["left"]["version"] == 1 and report["right"]["version"] == 2

    code, out, _ = loom_cli("diff", "--tenant", "acme", recorded.big, recorded.upgraded)
    assert code == 1
    assert any(line.startswith("≠ big") for line in out.splitlines())
    assert f"first divergence at event {parting}:" in out

    code, out, _ = loom_cli("diff", "--tenant", "acme", recorded.big, recorded.big)
    assert code == 0 and "same: every event decides the same" in out


# --- export and import ------------------------------------------------------------------


def test_export_then_import_into_an_empty_store_gives_identical_status_documents(
    loom_cli: Cli,
    recorded: Recorded,
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = tmp_path / "acme.jsonl"
    code, _, err = loom_cli("export", "--tenant", "acme", "--output", str(archive))
    assert code == 0 and "exported" in err
    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert [line["position"] for line in lines] == sorted(line["position"] for line in lines)
    assert {line["tenant"] for line in lines} == {"acme"}
    assert lines[0]["type"] == "ProcessSaved"

    monkeypatch.setenv("LOOM_DATABASE_URL", empty_url)
    code, out, _ = loom_cli("import", str(archive))
    assert code == 0, out
    assert out.startswith(f"imported {len(lines)} events")

    reexported = _reexport(loom_cli, tmp_path)
    assert [_fields(line) for line in reexported] == [_fields(line) for line in lines]

    executions = (recorded.big, recorded.small, recorded.upgraded)
    assert _status_documents(recorded.url, executions) == _status_documents(empty_url, executions)
    for execution_id in executions:
        assert loom_cli("audit", "--verify", "--tenant", "acme", execution_id)[0] == 0
        assert loom_cli("replay", "--tenant", "acme", execution_id)[0] == 0

    # The same archive again: everything is there already, nothing is written twice.
    code, out, _ = loom_cli("import", str(archive))
    assert code == 0 and f"resumed: {len(lines)} of them" in out
    assert len(_reexport(loom_cli, tmp_path)) == len(lines)


class StopsAfter:
    """The store, failing every append after the first `appends` as a lost connection would."""

    def __init__(self, store: Any, appends: int) -> None:
        self._store = store
        self._left = appends

    def append(self, tenant: str, appends: Any) -> list[int]:
        if self._left == 0:
            raise StoreUnavailable("connection lost")
        self._left -= 1
        result: list[int] = self._store.append(tenant, appends)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "from before the chain"])
def test_an_import_that_stopped_half_way_is_finished_by_importing_again(
    loom_cli: Cli,
    recorded: Recorded,
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sealed: bool,
) -> None:
    archive = tmp_path / "acme.jsonl"
    assert loom_cli("export", "--tenant", "acme", "--output", str(archive))[0] == 0
    if not sealed:  # as exported by a store that kept no hashes: import seals them anew
        unsealed = [
            {**json.loads(x), "hash": None, "prev": None} for x in archive.read_text().splitlines()
        ]
        archive.write_text("".join(json.dumps(x) + "\n" for x in unsealed))
    lines = archive.read_text().splitlines()
    monkeypatch.setattr(archive_tool, "WRITE_BATCH", 7)
    settings = Settings.from_env({"LOOM_DATABASE_URL": empty_url})
    store = open_event_store(empty_url)
    try:
        with pytest.raises(StoreUnavailable):
            archive_tool.import_archive(
                StopsAfter(store, 2), str(archive), lambda: open_status_store(settings, store)
            )
        assert store.max_position("acme") > 0  # half of it is in
    finally:
        store.close()

    monkeypatch.setenv("LOOM_DATABASE_URL", empty_url)
    code, out, _ = loom_cli("import", str(archive))
    assert code == 0, out
    assert "resumed: 14 of them" in out
    kept = ("stream_id", "seq", "type", "event") if not sealed else None
    strip = [_fields(json.loads(x), kept) for x in lines]
    assert [_fields(x, kept) for x in _reexport(loom_cli, tmp_path)] == strip
    executions = (recorded.big, recorded.small, recorded.upgraded)
    assert _status_documents(recorded.url, executions) == _status_documents(empty_url, executions)


def test_an_import_into_a_tenant_holding_other_events_is_refused_and_writes_nothing(
    loom_cli: Cli,
    recorded: Recorded,
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = tmp_path / "acme.jsonl"
    assert loom_cli("export", "--tenant", "acme", "--output", str(archive))[0] == 0
    store = open_event_store(empty_url)
    try:
        store.append("acme", [Append(UUID(int=7), 0, [_node_completed("someone else's")])])
        before = store.max_position("acme")
    finally:
        store.close()
    monkeypatch.setenv("LOOM_DATABASE_URL", empty_url)
    code, _, err = loom_cli("import", str(archive))
    assert code == 2 and "already holds events that are not this archive's" in err
    store = open_event_store(empty_url)
    try:
        assert store.max_position("acme") == before
    finally:
        store.close()


def _reexport(loom_cli: Cli, tmp_path: Path) -> list[dict[str, Any]]:
    """Tenant acme exported again from the store LOOM_DATABASE_URL names now."""
    again = tmp_path / "again.jsonl"
    assert loom_cli("export", "--tenant", "acme", "--output", str(again))[0] == 0
    return [json.loads(line) for line in again.read_text().splitlines()]


def _fields(line: dict[str, Any], kept: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An exported line without its position (or with only `kept`)."""
    return {k: v for k, v in line.items() if (k in kept if kept else k != "position")}


def _node_completed(element: str) -> NodeCompleted:
    return NodeCompleted(at="2026-01-01T00:00:00Z", actor="someone", element=element, output={})


def _status_documents(url: str, execution_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    settings = Settings.from_env({"LOOM_DATABASE_URL": url})
    store = open_event_store(url)
    statuses = open_status_store(settings, store)
    try:
        docs = [statuses.get("acme", execution_id) for execution_id in execution_ids]
    finally:
        statuses.close()
        store.close()
    assert all(doc is not None and doc.status == "completed" for doc in docs)
    return [msgspec.to_builtins(doc) for doc in docs]


def test_export_since_and_import_of_an_altered_archive(
    loom_cli: Cli,
    recorded: Recorded,
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, _ = loom_cli("export", "--tenant", "acme", "--since", "2999-01-01")
    assert code == 0 and out == ""
    code, out, _ = loom_cli("export", "--tenant", "acme", "--since", "2000-01-01T00:00:00Z")
    assert code == 0 and len(out.splitlines()) > 10
    code, _, err = loom_cli("export", "--tenant", "acme", "--since", "last tuesday")
    assert code == 2 and "ISO 8601" in err

    altered = out.replace('"score":240', '"score":241', 1)
    assert altered != out
    archive = tmp_path / "altered.jsonl"
    archive.write_text(altered)
    monkeypatch.setenv("LOOM_DATABASE_URL", empty_url)
    code, _, err = loom_cli("import", str(archive))
    assert code == 2 and "does not match its hash: the archive was altered" in err
    code, _, err = loom_cli("import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
    code, out, _ = loom_cli("executions", "--tenant", "acme")  # nothing was loaded
    assert code == 2


# --- tenancy, bad input, read-only --------------------------------------------------------


def test_every_command_refuses_another_tenants_execution_as_not_found(
    loom_cli: Cli, recorded: Recorded
) -> None:
    foreign = recorded.foreign
    commands = [
        ("audit", "--tenant", "acme", foreign),
        ("audit", "--verify", "--tenant", "acme", foreign),
        ("replay", "--tenant", "acme", foreign),
        ("replay", "--tenant", "acme", foreign, "--version", "1"),
        ("state", "--tenant", "acme", foreign, "--at", "1"),
        ("diff", "--tenant", "acme", recorded.big, foreign),
        ("audit", "--tenant", "acme", recorded.process_id),  # a process is no execution
        ("audit", "--tenant", "nobody", recorded.big),
        ("state", "--tenant", "acme", "not-a-uuid"),
    ]
    for argv in commands:
        code, out, err = loom_cli(*argv)
        assert code == 2, argv
        assert out == "" and "not found" in err, (argv, err)


def test_bad_input_exits_non_zero_with_a_clear_message(loom_cli: Cli, recorded: Recorded) -> None:
    cases = [
        (("audit", "--tenant", "Bad Tenant!", recorded.big), "invalid tenant id"),
        (("replay", "--tenant", "acme"), "give an execution ID, or --all"),
        (("replay", "--all", "--tenant", "acme", recorded.big), "give no ID"),
        (("replay", "--all", "--tenant", "nobody"), "tenant nobody has no events"),
        (("export", "--tenant", "nobody"), "tenant nobody has no events"),
        (("import", "--tenant", "Bad!", "x.jsonl"), "invalid tenant id"),
    ]
    for argv, message in cases:
        code, _, err = loom_cli(*argv)
        assert code == 2 and message in err, (argv, err)
    with pytest.raises(SystemExit) as exited:
        main(["state", "--tenant", "acme", recorded.big, "--at", "three"])
    assert exited.value.code == 2


def test_the_tools_never_write_to_the_store(
    loom_cli: Cli, recorded: Recorded, tmp_path: Path
) -> None:
    store = open_event_store(recorded.url)
    try:
        before = (store.tenants(), store.max_position("acme"), store.max_position("globex"))
        for argv in [
            ("audit", "--tenant", "acme", recorded.big),
            ("audit", "--verify", "--tenant", "acme", recorded.big),
            ("replay", "--tenant", "acme", recorded.big),
            ("replay", "--all", "--tenant", "acme"),
            ("replay", "--tenant", "acme", recorded.big, "--version", "2"),
            ("state", "--tenant", "acme", recorded.big),
            ("diff", "--tenant", "acme", recorded.big, recorded.small),
            ("executions", "--tenant", "acme"),
            ("export", "--tenant", "acme"),
            ("audit", "--tenant", "nobody", recorded.big),
            ("executions", "--tenant", "nobody"),
        ]:
            loom_cli(*argv)
        after = (store.tenants(), store.max_position("acme"), store.max_position("globex"))
    finally:
        store.close()
    assert after == before
    assert "nobody" not in after[0]


def test_a_missing_sqlite_store_is_refused_not_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "absent.db"
    monkeypatch.setenv("LOOM_DATABASE_URL", f"sqlite:///{path}")

    code = main(["executions", "--tenant", "acme"])

    assert code == 2 and "no event store at" in capsys.readouterr().err
    assert not path.exists()


def test_what_if_feeds_recorded_effect_answers_to_the_same_calls_only(
    loom_cli: Cli, recorded: Recorded
) -> None:
    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.upgraded, "--version", "2")
    assert code == 0, out
    assert out.splitlines()[-1].startswith("new path: completed after 1 of 1 recorded outside")

    code, out, _ = loom_cli("replay", "--tenant", "acme", recorded.upgraded, "--version", "1")
    assert code == 1
    lines = out.splitlines()
    assert lines[lines.index("would run:") + 1].split()[:2] == ["yes", "completed"]
    not_run = lines[lines.index("would not run:") + 1 :]
    assert any(line.split()[:2] == ["notify", "absent"] for line in not_run)
    assert lines[-1].startswith("new path: completed after 0 of 1 recorded outside")
    assert len(_Hook.calls) == 1
