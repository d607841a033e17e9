"""The HTTP shell: authentication, errors, request ids, health and OpenAPI around any routes.

Outermost of all sits the edge (`RequestIdMiddleware`): every HTTP request, the
ones Litestar refuses before any route (401, 404) included, gets a request id and
one access-log line with the status it was answered with. The edge also bounds
request bodies: one announcing more than the limit is answered 413 unread, and
one streamed (chunked) past it is cut off with 413 as soon as the limit is
crossed, counted as the bytes arrive. A client that goes away mid-body is
logged as such (status 499), not as a server error. A route taking a JSON body
answers 415 to a body of another content type.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import structlog
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import (
    ASGIApp,
    ControllerRouterHandler,
    LifespanHook,
    Message,
    Receive,
    Scope,
    Send,
)

from infra.auth import TokenVerifier
from infra.http_server import SCOPE_TIMED_OUT  # set when the server gave up on a slow body
from infra.settings import Settings
from services.roles.api.errors import MAX_BODY_BYTES, exception_handlers
from services.roles.auth import OPEN_PATHS, BearerAuthMiddleware
from services.usecases.ids import new_id

REQUEST_ID_HEADER = "X-Request-Id"
_SECURITY_SCHEME = "BearerToken"
# A caller's own request id is kept only when it cannot smuggle anything into logs.
_CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# nginx's "client closed request": what the access log says of a body never finished.
STATUS_CLIENT_GONE = 499
_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json\s*(?:;.*)?", re.IGNORECASE | re.DOTALL)


class ClientDisconnected(Exception):
    """The client went away (or was cut off for slowness) before its body arrived whole."""


class RequestIdMiddleware:
    """The edge: a `request_id` per request and WebSocket, the access log, the body limit.

    A sane incoming `X-Request-Id` is reused, so a trace can cross services; the id
    is bound into structlog's contextvars and kept in `scope["state"]` for the
    `X-Request-Id` response header. Each HTTP request is logged once, after its
    answer, with the status it got (0: none was sent).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Looked up per edge, not per module: a test capturing logs builds its own app.
        self._access_log = structlog.get_logger("loom.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind a fresh logging context for this connection, pass it on, log the answer."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            length, streamed = _body_framing(scope)
            if length is not None and length > self.max_body_bytes:
                # Announced too large: answered before a byte of it is read.
                await _send_json(
                    send_and_note,
                    413,
                    {"detail": too_large_detail(self.max_body_bytes)},
                    request_id,
                    close=True,
                )
                return
            if length or streamed:
                receive = _bounded(receive, scope, self.max_body_bytes)
            await self.app(scope, receive, send_and_note)
        finally:
            self._access_log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


def too_large_detail(limit: int) -> str:
    """What a 413 says: the limit, in words and in bytes."""
    return f"request body larger than {_size(limit)} ({limit} bytes)"


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count} bytes"


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The announced Content-Length (None if absent or unreadable), and whether it is chunked."""
    length: int | None = None
    streamed = False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None  # the server (or Litestar) refuses it
        elif name == b"transfer-encoding":
            streamed = True
    return length, streamed


def _bounded(receive: Receive, scope: Scope, limit: int) -> Receive:
    """`receive`, counting body bytes as they arrive: 413 once past `limit`."""
    received = 0
    complete = False

    async def bounded_receive() -> Message:
        nonlocal received, complete
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestEntityTooLarge(
                    detail=too_large_detail(limit), headers={"Connection": "close"}
                )
            complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect" and not complete:
            raise ClientDisconnected(
                "request body timed out" if scope.get(SCOPE_TIMED_OUT) else "client went away"
            )
        return message

    return bounded_receive


async def _send_json(
    send: Send, status: int, body: dict[str, Any], request_id: str, *, close: bool = False
) -> None:
    content = msgspec.json.encode(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def _client_gone(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Nobody is there to read it; the access log records what became of the request.
    timed_out = bool(request.scope.get(SCOPE_TIMED_OUT))
    return Response(
        content={"detail": str(exc)},
        status_code=408 if timed_out else STATUS_CLIENT_GONE,
        headers={"Connection": "close"},
    )


class JsonBodyMiddleware:
    """415 for a body that is not JSON, sent to a route that decodes its body as JSON.

    Litestar parses a JSON body whatever its Content-Type says; a route taking
    `data: JSONBody[…]` here only gets one that says `application/json` or
    `application/<something>+json`. Requests without a body pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._takes_json: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a non-JSON body to a JSON route; pass everything else on."""
        if scope["type"] == "http" and self._json_route(scope):
            length, streamed = _body_framing(scope)
            if length or streamed:
                content_type = next(
                    (v for k, v in scope["headers"] if k == b"content-type"), b""
                ).decode("latin-1")
                if not _JSON_TYPE.fullmatch(content_type.strip()):
                    said = f"Content-Type {content_type[:80]!r}" if content_type else "none"
                    raise ClientException(
                        status_code=415,
                        detail=f"the request body must be JSON (Content-Type: application/json); "
                        f"got {said}",
                    )
        await self.app(scope, receive, send)

    def _json_route(self, scope: Scope) -> bool:
        handler = scope.get("route_handler")
        if handler is None:
            return False
        known = self._takes_json.get(id(handler))
        if known is None:
            field = getattr(handler, "parsed_data_field", None)
            media_type = getattr(getattr(field, "kwarg_definition", None), "media_type", None)
            known = field is not None and media_type in (None, RequestEncodingType.JSON)
            self._takes_json[id(handler)] = known
        return known


class LoomApp(Litestar):
    """Litestar with Loom's edge outermost, around the responses Litestar makes itself."""

    edge: RequestIdMiddleware

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Lifespan straight to Litestar; HTTP and WebSocket through the edge first."""
        if scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        await self.edge(scope, receive, send)

    async def _inner(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)


def _request_id(scope: Scope) -> str:
    state: dict[str, Any] = scope.setdefault("state", {})
    if (known := state.get("request_id")) is not None:
        return str(known)
    incoming = next(
        (v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"x-request-id"),
        "",
    )
    request_id = incoming if _CALLER_REQUEST_ID.fullmatch(incoming) else new_id().replace("-", "")
    state["request_id"] = request_id
    return request_id


async def _echo_request_id(message: Message, scope: Scope) -> None:
    # A before-send hook rather than a send wrapper in the middleware: responses
    # made by the app-level exception handler (401, unknown routes) bypass
    # route middleware, yet they need the header too.
    if message["type"] == "http.response.start":
        header = (REQUEST_ID_HEADER.lower().encode(), _request_id(scope).encode())
        message["headers"] = [*message.get("headers", ()), header]


class HealthOut(msgspec.Struct, frozen=True):
    status: Literal["ok"]


@get("/health", exclude_from_auth=True, security=[], tags=["health"])
async def health() -> HealthOut:
    """Liveness: answers as long as the process serves HTTP."""
    return HealthOut(status="ok")


def create_app(
    settings: Settings,
    *,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    on_startup: Sequence[LifespanHook] = (),
    on_shutdown: Sequence[LifespanHook] = (),
    state: dict[str, Any] | None = None,
    dependencies: dict[str, Any] | None = None,
) -> Litestar:
    """Build the Loom API around `route_handlers`.

    Every route needs a bearer token except `/health`, `/schema…` and `/studio…`;
    `app.state` holds `settings` and `verifier` (a `TokenVerifier` from
    `settings` unless `state` brings one) plus whatever `state` adds;
    `dependencies` are app-wide `Provide`s for the routes (services, stores).
    """
    app_state: dict[str, Any] = {"settings": settings, "verifier": TokenVerifier(settings)}
    app_state.update(state or {})
    app = LoomApp(
        route_handlers=[health, *route_handlers],
        middleware=[
            DefineMiddleware(BearerAuthMiddleware, exclude=list(OPEN_PATHS)),
            JsonBodyMiddleware,
        ],
        before_send=[_echo_request_id],
        exception_handlers={**exception_handlers(), ClientDisconnected: _client_gone},
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        state=State(app_state),
        dependencies=dependencies or {},
        openapi_config=_openapi(),
        request_max_body_size=MAX_BODY_BYTES,
        # Logging is configured once by the composition root (infra.logging); Litestar's
        # own config would install a second, non-JSON handler.
        logging_config=None,
        debug=False,
    )
    app.edge = RequestIdMiddleware(app._inner, max_body_bytes=MAX_BODY_BYTES)
    return app


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Loom",
        version="1",
        description="An event-sourced workflow engine you can watch live and replay exactly.",
        path="/schema",
        components=Components(
            security_schemes={
                _SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A JWT with `sub`, `tenant_id` and `exp` claims.",
                )
            }
        ),
        security=[{_SECURITY_SCHEME: []}],
    )
