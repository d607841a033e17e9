"""A token's `sub` full of ESC sequences and newlines cannot forge what `loom audit` prints.

The hostile actor signs in over the API, as anyone with a token could, and
starts an execution; the tools then print the recorded history.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from infra.auth import mint_token
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from services.cli import main
from tests.support import SECRET, contract_example

HOSTILE = (
    "mallory\x1b[2K\x1b[1A\r\n    1  2030-01-01T00:00:00Z  admin  ExecutionCancelled\x07\x9b0m"
)


def _controls(text: str) -> list[str]:
    """Control characters in `text`, line ends apart."""
    return [c for c in text.replace("\n", "") if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F]


@pytest.fixture
async def recorded(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path}/loom.db"
    settings = Settings.from_env({"LOOM_DATABASE_URL": url, "LOOM_JWT_SECRET": SECRET})
    loom = Loom(settings)
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', HOSTILE)}"}
    async with AsyncTestClient(app=web_app(loom)) as client:
        saved = await client.post("/api/v1/processes", json=contract_example(), headers=headers)
        assert saved.status_code == 201, saved.text
        body = {"process_id": saved.json()["process_id"], "input": {"amount": 120}}
        started = await client.post("/api/v1/executions", json=body, headers=headers)
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        async with asyncio.timeout(15):
            while True:
                status = await client.get(
                    f"/api/v1/executions/{execution_id}/status", headers=headers
                )
                if status.json()["status"] == "completed":
                    break
                await asyncio.sleep(0.02)
    return url, execution_id


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, *argv: str
) -> str:
    monkeypatch.setenv("LOOM_DATABASE_URL", url)
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_audit_prints_a_hostile_actor_escaped_on_its_own_lines(
    recorded: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, execution_id = recorded
    events = _run(monkeypatch, capsys, url, "audit", "--tenant", "acme", execution_id, "--json")
    out = _run(monkeypatch, capsys, url, "audit", "--tenant", "acme", execution_id)

    assert _controls(out) == []
    lines = out.splitlines()
    assert len(lines) == 1 + len(events.splitlines()), "one header line, one line per event"
    assert not any(line.startswith("    1  2030") for line in lines), "a forged line"
    assert "started by mallory\\x1b[2K\\x1b[1A\\r\\n" in lines[0]


def test_executions_prints_a_hostile_actor_escaped(
    recorded: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, execution_id = recorded
    out = _run(monkeypatch, capsys, url, "executions", "--tenant", "acme")

    assert _controls(out) == []
    [line] = out.splitlines()
    assert line.startswith(execution_id) and "mallory\\x1b[2K" in line


@pytest.mark.parametrize("command", ["audit", "executions"])
def test_json_output_stays_valid_json_holding_the_actor_as_it_was(
    recorded: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    url, execution_id = recorded
    argv = [command, "--tenant", "acme", "--json"]
    if command == "audit":
        argv.append(execution_id)
    out = _run(monkeypatch, capsys, url, *argv)

    assert _controls(out) == []
    rows = [json.loads(line) for line in out.splitlines()]
    actors = {row.get("actor", row.get("started_by")) for row in rows}
    assert HOSTILE in actors
