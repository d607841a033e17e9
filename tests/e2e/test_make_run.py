"""`make run`'s entry point as a real process: serve, print a dev token, run the example, stop.

`loom serve all` is started as `make run` starts it, on a free port and a
SQLite file of its own; the test speaks to it over HTTP only, as a user
following the printed instructions would. Without LOOM_JWT_SECRET (as `make
run`) it signs with a secret it generates under `data/`; with one, it prints
no token.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.auth import mint_token
from tests.support import SECRET, contract_example

pytestmark = pytest.mark.e2e

LOOM = Path(sys.executable).parent / "loom"
EXAMPLE: dict[str, Any] = contract_example()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """`loom serve all` running, with everything it printed so far."""

    def __init__(self, process: subprocess.Popen[str], base: str) -> None:
        self.process = process
        self.base = base
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"loom exited early:\n{self.output}"
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"/health never answered:\n{self.output}")

    def printed_token(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"token:\s+(\S+)", self.output)
            if found:
                return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no dev token printed:\n{self.output}")


def _env(workdir: Path, port: int, secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    env |= {
        "LOOM_HOST": "127.0.0.1",
        "LOOM_PORT": str(port),
        "LOOM_DATABASE_URL": f"sqlite:///{workdir}/data/loom.db",
        "PYTHONUNBUFFERED": "1",
    }
    if secret is not None:
        env["LOOM_JWT_SECRET"] = secret
    return env


def _serve(workdir: Path, secret: str | None = SECRET) -> Served:
    """`loom serve all` on a free port, its store under `workdir/data` (no secret: as make run)."""
    port = _free_port()
    env = _env(workdir, port, secret)
    process = subprocess.Popen(
        [str(LOOM), "serve", "all"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Served(process, f"http://127.0.0.1:{port}")


def _end(served: Served) -> None:
    if served.process.poll() is None:
        served.process.kill()
        served.process.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    served = _serve(tmp_path, secret=None)  # exactly as `make run`: no LOOM_JWT_SECRET
    try:
        yield served
    finally:
        _end(served)


def test_loom_serve_all_runs_the_contract_example_and_stops_cleanly_on_ctrl_c(
    served: Served, tmp_path: Path
) -> None:
    served.wait_healthy()
    token = served.printed_token()
    assert f"{served.base}/studio#token={token}" in served.output
    headers = {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=served.base, headers=headers, timeout=10) as api:
        created = api.post("/api/v1/processes", json=EXAMPLE)
        assert created.status_code == 201, created.text
        started = api.post(
            "/api/v1/executions",
            json={"process_id": created.json()["process_id"], "input": {"amount": 120}},
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["execution_id"]
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status = api.get(f"/api/v1/executions/{execution_id}/status").json()
            if status["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.05)
    assert status["status"] == "completed", status
    assert status["output"] == {"yes": {"score": 240}}
    assert (tmp_path / "data").is_dir()
    secret_file = tmp_path / "data" / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text().strip() not in served.output

    # `loom token` signs with the same generated secret as the printed link.
    port = served.base.rsplit(":", 1)[1]
    minted = subprocess.run(
        [str(LOOM), "token", "--tenant", "acme", "--sub", "alice"],
        cwd=tmp_path,
        env=_env(tmp_path, int(port), None),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    whoami = httpx.get(
        f"{served.base}/api/v1/processes", headers={"Authorization": f"Bearer {minted}"}
    )
    assert whoami.status_code == 200, whoami.text

    served.process.send_signal(signal.SIGINT)
    code = served.process.wait(timeout=10)

    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), served.output
    assert "Traceback" not in served.output, served.output


def test_a_killed_loom_loses_no_execution_it_accepted_and_its_read_model_catches_up(
    tmp_path: Path,
) -> None:
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
    first = _serve(tmp_path)
    try:
        first.wait_healthy()
        with httpx.Client(base_url=first.base, headers=headers, timeout=10) as api:
            created = api.post("/api/v1/processes", json=EXAMPLE)
            assert created.status_code == 201, created.text
            body = {"process_id": created.json()["process_id"], "input": {"amount": 120}}
            accepted = []
            for _ in range(60):
                started = api.post("/api/v1/executions", json=body)
                assert started.status_code == 202, started.text
                accepted.append(started.json()["execution_id"])
        # No Ctrl-C: the process dies with what it had not yet written to the read model.
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        _end(first)

    second = _serve(tmp_path)
    try:
        second.wait_healthy()
        with httpx.Client(base_url=second.base, headers=headers, timeout=10) as api:
            listed = api.get("/api/v1/executions", params={"limit": 500}).json()["items"]
            assert sorted(item["execution_id"] for item in listed) == sorted(accepted)
            assert {item["status"] for item in listed} == {"completed"}
            for execution_id in accepted[-5:]:
                status = api.get(f"/api/v1/executions/{execution_id}/status").json()
                assert status["output"] == {"yes": {"score": 240}}
    finally:
        _end(second)


def test_a_secret_the_operator_set_never_gets_a_token_printed(tmp_path: Path) -> None:
    served = _serve(tmp_path, secret=SECRET)
    try:
        served.wait_healthy()  # the banner, when there is one, is out before the port opens
        assert not re.search(r"token:\s+\S", served.output), served.output
        assert "/studio#token=" not in served.output
        assert "eyJ" not in served.output  # no JWT at all (every one starts so)
        assert not (tmp_path / "data" / "jwt-secret").exists()
    finally:
        _end(served)


def test_the_generated_secret_refuses_a_non_loopback_address(tmp_path: Path) -> None:
    env = _env(tmp_path, _free_port(), None) | {"LOOM_HOST": "0.0.0.0"}
    refused = subprocess.run(
        [str(LOOM), "serve", "all"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "LOOM_HOST=0.0.0.0" in refused.stderr and "LOOM_JWT_SECRET" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_wait_for_a_signal_survives_a_killed_loom_and_completes_after(tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'acme', 'alice')}"}
    approval = {
        "project": "Ops",
        "app": "Approvals",
        "name": "approve",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {"key": "ok", "type": "signal", "params": {"name": "approve"}},
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "ok"},
                    {"source": "ok", "target": "done"},
                ],
            }
        ],
        "triggers": [{"key": "orders", "type": "webhook"}],
    }
    first = _serve(tmp_path)
    try:
        first.wait_healthy()
        with httpx.Client(base_url=first.base, headers=headers, timeout=10) as api:
            saved = api.post("/api/v1/processes", json=approval)
            assert saved.status_code == 201, saved.text
            hook = saved.json()["triggers"][0]["url"]
            started = httpx.post(f"{first.base}{hook}", json={"order": 7}, timeout=10)
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            for _ in range(500):
                status = api.get(f"/api/v1/executions/{execution_id}/status").json()
                if status["nodes"].get("ok", {}).get("state") == "waiting":
                    break
                time.sleep(0.02)
            assert status["nodes"]["ok"]["state"] == "waiting", status
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        _end(first)

    second = _serve(tmp_path)
    try:
        second.wait_healthy()
        with httpx.Client(base_url=second.base, headers=headers, timeout=10) as api:
            waiting = api.get("/api/v1/signals").json()
            assert [w["execution_id"] for w in waiting] == [execution_id]
            sent = api.post(
                f"/api/v1/executions/{execution_id}/signals/approve", json={"data": {"by": "ops"}}
            )
            assert sent.status_code == 202, sent.text
            for _ in range(500):
                status = api.get(f"/api/v1/executions/{execution_id}/status").json()
                if status["status"] != "running":
                    break
                time.sleep(0.02)
            # The same hook, kept across the restart, still starts the process.
            again = httpx.post(f"{second.base}{hook}", json={"order": 8}, timeout=10)
    finally:
        _end(second)

    assert status["status"] == "completed", status
    assert status["output"]["done"]["data"] == {"by": "ops"}
    assert status["trigger"] == {"type": "webhook", "key": "orders"}
    assert again.status_code == 202
