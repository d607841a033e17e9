"""uvicorn with the limits a public edge needs: header and body read timeouts, a header cap.

uvicorn has none of these for its httptools parser (`h11_max_incomplete_event_size`
only bounds h11, the slow path): a client could hold a connection open forever
with a request it never finishes, or send headers of any size. `LimitedProtocol`
is uvicorn's `HttpToolsProtocol` (the fast path) with, per connection:

- a header deadline, from the connection (or the request's first byte) to its
  headers' end: past it the request is answered 408 and the connection closed;
  an idle connection that never sent a byte is closed silently;
- a body deadline, from the headers' end to the body's end: past it the
  connection is closed (the app sees the client gone; `SCOPE_TIMED_OUT` tells it
  why);
- a cap on the request line plus headers: past it, 431 and close, before the
  app sees the request.

A response that closes the connection before the request's body was read (a
413) is a lingering close, as nginx does it: the answer goes out, then a FIN,
and what the client still sends is read and dropped for a moment (at most
`LINGER_S`, `LINGER_BYTES`) before the socket closes. Closing at once, with
unread bytes waiting, makes the kernel answer with a reset, and a client that
gets the reset first never sees its 413.

Requests that arrive whole in one read, the common case, arm no timer at all.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The scope key the app reads to tell a body timeout from a client that left.
SCOPE_TIMED_OUT = "loom.timed_out"
LINGER_S = 2.0
LINGER_BYTES = 256 * 1024


class EdgeLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How long a client may take over its headers and its body, and how large headers may be."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_header_bytes: int = 32 * 1024


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized head."""


class _LingeringClose:
    """The transport as a request's cycle sees it: `close` lingers while its body is unread."""

    def __init__(self, transport: asyncio.Transport, protocol: LimitedProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if self._protocol._awaiting_body and not self._transport.is_closing():
            self._protocol._linger()
        else:
            self._transport.close()


class LimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `limits` enforced (see the module's docstring)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and its headers' end
        self._began_in_chunk = False
        self._head_bytes = 0
        self._awaiting_body = False
        self._refused = False
        self._lingered = 0  # bytes dropped while lingering

    # --- connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Until the first request's headers end; an idle connection is closed at this deadline.
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_s, self._header_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport over: its own pings keep it honest.
        self._cancel_timers()
        self._awaiting_body = False
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            # A refused connection is closing: nothing more is parsed; a lingering one
            # drops what it reads, up to a bound.
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        self._began_in_chunk = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._refuse_head()
                return
            self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head:
            if not self._began_in_chunk:
                # Every byte of a chunk fed wholly inside a head is a header byte: this
                # bounds what the parser buffers for a header it has not finished.
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.max_header_bytes:
                    self._refuse_head()
                    return
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(
                    self.limits.header_timeout_s, self._header_timed_out
                )
        elif self._awaiting_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(
                self.limits.body_timeout_s, self._body_timed_out
            )
            if self.cycle is not None:
                # Its answer may close the connection before the body is read: linger then.
                self.cycle.transport = _LingeringClose(self.transport, self)  # type: ignore[assignment]

    # --- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._began_in_chunk = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        self._awaiting_body = not (self.parser.should_upgrade() and self._should_upgrade())

    def on_message_complete(self) -> None:
        self._awaiting_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # --- limits ------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            raise _HeadersTooLarge

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._in_head and idle:
            limit = self.limits.header_timeout_s
            self._refuse(408, f"request headers not received within {limit:g} s")
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        cycle.scope[SCOPE_TIMED_OUT] = "body"  # type: ignore[literal-required]
        if not cycle.response_started:
            limit = self.limits.body_timeout_s
            self._write_error(408, f"request body not received within {limit:g} s")
        # The app, waiting on its body, now hears the client is gone; what it answers is dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refused = True
        self.transport.close()

    def _refuse_head(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"request headers larger than {limit} bytes")

    def _bad_request(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self._refuse(400, "invalid HTTP request")

    def _refuse(self, status: int, detail: str) -> None:
        self._refused = True
        self._cancel_timers()
        self._write_error(status, detail)
        self.transport.close()

    def _write_error(self, status: int, detail: str) -> None:
        body = msgspec.json.encode({"detail": detail})
        phrase = {
            400: b"Bad Request",
            408: b"Request Timeout",
            431: b"Request Header Fields Too Large",
        }
        head = [b"HTTP/1.1 %d %s\r\n" % (status, phrase.get(status, b""))]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\n" % len(body))
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)

    def _linger(self) -> None:
        self._refused = True
        self._lingered = 0
        self._awaiting_body = False
        self._cancel_timers()
        if self.transport.can_write_eof():
            self.transport.write_eof()  # after the answer already written
            self._body_timer = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def limited_protocol(limits: EdgeLimits) -> type[LimitedProtocol]:
    """A `LimitedProtocol` class enforcing `limits` (uvicorn takes a class, not an instance)."""
    return type("LimitedProtocol", (LimitedProtocol,), {"limits": limits})


def server_config(app: Any, *, host: str, port: int, limits: EdgeLimits, **options: Any) -> Any:
    """A `uvicorn.Config` serving `app` with `limits` on every HTTP connection."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=limited_protocol(limits),
        # The h11 slow path is never used here; bounded all the same, should it be.
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **options,
    )
