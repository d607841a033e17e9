"""Loom started as a real process (`loom serve all`, what `make run` runs) for e2e tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from infra.auth import mint_token


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LoomServer:
    base_url: str
    secret: str
    process: subprocess.Popen[bytes]

    def token(self, tenant: str, sub: str = "e2e-user") -> str:
        return mint_token(self.secret, tenant, sub)


def start_loom(workdir: Path, **env: str) -> LoomServer:
    port = free_port()
    secret = secrets.token_hex(16)
    environment = {
        **os.environ,
        "LOOM_PORT": str(port),
        "LOOM_HOST": "127.0.0.1",
        "LOOM_DATABASE_URL": f"sqlite:///{workdir}/loom.db",
        "LOOM_JWT_SECRET": secret,
        **env,
    }
    loom = Path(sys.executable).parent / "loom"
    process = subprocess.Popen(
        [str(loom), "serve", "all"],
        cwd=workdir,
        env=environment,
        stdout=(workdir / "stdout.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((workdir / "stdout.log").read_text())
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                return LoomServer(base_url, secret, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("loom did not answer /health within 30 s")


def stop_loom(server: LoomServer) -> None:
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def loom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoomServer]:
    server = start_loom(tmp_path_factory.mktemp("loom"))
    yield server
    stop_loom(server)
