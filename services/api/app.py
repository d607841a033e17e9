"""The HTTP shell: authentication, errors, request ids, health and OpenAPI around any routes."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import structlog
from litestar import Litestar, get
from litestar.datastructures import State
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
from infra.settings import Settings
from services.api.auth import OPEN_PATHS, BearerAuthMiddleware
from services.api.errors import MAX_BODY_BYTES, exception_handlers
from services.ids import new_id

REQUEST_ID_HEADER = "X-Request-Id"
_access_log = structlog.get_logger("loom.access")
_SECURITY_SCHEME = "BearerToken"
# A caller's own request id is kept only when it cannot smuggle anything into logs.
_CALLER_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIdMiddleware:
    """Gives each HTTP request and WebSocket a `request_id` bound into structlog's contextvars.

    A sane incoming `X-Request-Id` is reused, so a trace can cross services.
    The id is kept in `scope["state"]` for the `X-Request-Id` response header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            await self.app(scope, receive, send_and_note)
        finally:
            _access_log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


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


@get("/health", exclude_from_auth=True, security=[], tags=["health"])
async def health() -> dict[str, str]:
    """Liveness: answers as long as the process serves HTTP."""
    return {"status": "ok"}


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
    return Litestar(
        route_handlers=[health, *route_handlers],
        middleware=[
            RequestIdMiddleware,
            DefineMiddleware(BearerAuthMiddleware, exclude=list(OPEN_PATHS)),
        ],
        before_send=[_echo_request_id],
        exception_handlers=exception_handlers(),
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
