"""Bearer-token authentication for every route but the open ones.

HTTP requests without a valid token are answered 401 here. WebSocket
connections are never refused here: closing before `accept()` reaches the
client as an HTTP 403, while the contract wants close code 4401 after accept.
So a WebSocket's `user` is left `None` and its handler calls
`identity_or_none()`, then accepts and closes with `WS_UNAUTHENTICATED`
(`accept_authenticated` does both). A connection's `auth` is the `Verified`
token, so a WebSocket can end when its token does (`session_expires_at`).
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar.connection import ASGIConnection, WebSocket
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from infra.auth import AuthError, Identity, TokenVerifier, Verified

# Regexes matched against the path; everything else needs a token.
# A webhook's token in its URL is its credential (services/usecases/webhooks.py).
OPEN_PATHS = ("^/health$", "^/schema", "^/studio", "^/hooks/")
WS_UNAUTHENTICATED = 4401


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Reads `Authorization: Bearer …` (`?token=` too on WebSockets) into `connection.user`.

    The verifier is `app.state.verifier`. On success the tenant and subject are
    bound into structlog's contextvars for every later log line of the request.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Verify the caller's token; raise 401 for HTTP, leave `user` None for WebSockets."""
        verifier: TokenVerifier = connection.app.state.verifier
        is_websocket = connection.scope["type"] == ScopeType.WEBSOCKET
        token = _bearer(connection)
        if token is None and is_websocket:
            # Browsers cannot set headers on a WebSocket; a query token is all they have.
            # Never accepted on HTTP, where URLs end up in access logs and histories.
            token = connection.query_params.get("token")
        try:
            verified = verifier.verify_token(token or "")
        except AuthError as exc:
            if is_websocket:
                return AuthenticationResult(user=None, auth=None)
            raise NotAuthorizedException(
                detail=exc.detail, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        identity = verified.identity
        structlog.contextvars.bind_contextvars(tenant_id=identity.tenant, sub=identity.sub)
        return AuthenticationResult(user=identity, auth=verified)


def identity_or_none(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity | None:
    """The verified caller of this connection, or None when it did not authenticate."""
    user = connection.scope.get("user")
    return user if isinstance(user, Identity) else None


def session_expires_at(connection: ASGIConnection[Any, Any, Any, Any]) -> float | None:
    """When the token of this connection expires (epoch seconds), or None if it has none."""
    verified = connection.scope.get("auth")
    return verified.expires_at if isinstance(verified, Verified) else None


async def accept_authenticated(socket: WebSocket[Any, Any, Any]) -> Identity | None:
    """Accept the WebSocket; close it with 4401 and return None if the caller is unknown."""
    await socket.accept()
    identity = identity_or_none(socket)
    if identity is None:
        await socket.close(code=WS_UNAUTHENTICATED, reason="unauthenticated")
    return identity


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    # Straight from the ASGI scope: building Litestar's Headers costs more than the check.
    raw = next((v for k, v in connection.scope["headers"] if k.lower() == b"authorization"), None)
    if raw is None:
        return None
    header = raw.decode("latin-1")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
