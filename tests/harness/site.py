"""A fake outside HTTP site on loopback, and a guard that keeps a test on loopback.

`Site` is a real HTTP server on 127.0.0.1 that records every request and answers
by path: `/status/<code>`, `/text`, `/flaky` (500 while `failures_left`), `/slow`
(held until `release`), `/huge`, `/huge-stream`, `/redirect/<private|metadata|home>`,
any path given its own answer with `answer(...)`, and an echo of the request for
everything else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HUGE = 2 << 20
"""The size of `/huge` and `/huge-stream` answers: over any cap Loom keeps."""

Answer = Callable[["Site", Any], Any]
"""A path's own JSON answer, from the site (its requests so far) and the request's body."""


class Site:
    """What the site saw and how it behaves; its handler reads this."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 0
        self.arrived = threading.Event()  # a /slow request is being held
        self.release = threading.Event()  # let held /slow requests answer
        self.responded = threading.Event()  # a held /slow request was let go (answered or not)
        self.answers: dict[str, Answer] = {}
        self.url = ""

    def answer(self, prefix: str, answer: Answer) -> None:
        """Answer every path starting with `prefix` with 200 and the JSON `answer` makes."""
        self.answers[prefix] = answer

    def paths(self) -> list[str]:
        """The path (with its query) of every request, in the order they arrived."""
        return [r["path"] for r in self.requests]

    def bodies(self) -> list[Any]:
        """The (JSON-decoded) body of every request, in the order they arrived."""
        return [r["body"] for r in self.requests]


@contextlib.contextmanager
def serving(site: Site | None = None) -> Iterator[Site]:
    """A `Site` served on 127.0.0.1 for the block; its `url` is set while it runs."""
    site = site or Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield site
    finally:
        site.release.set()
        server.shutdown()
        server.server_close()


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address this process connects a socket to from now; anything but loopback fails."""
    seen: list[str] = []
    original = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        seen.append(host)
        if isinstance(address, tuple) and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}")
        return original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


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
            own = next((a for prefix, a in site.answers.items() if path.startswith(prefix)), None)
            if own is not None:
                self._json(200, own(site, body))
            elif path.startswith("/status/"):
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
                try:
                    self._json(200, {"slow": True})
                finally:
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
