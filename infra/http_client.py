"""The `http` element's port: httpx's async client behind the outbound guard, with a size cap."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
import msgspec

from domain.ports import EffectFailed
from infra.outbound_guard import GuardedNetworkBackend, OutboundGuard

MAX_RESPONSE_BYTES = 1 << 20
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT_S = 30.0
_ERROR_EXCERPT = 200


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connection pool given the guarded network backend."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(trust_env=False)
        limits = httpx.Limits()
        # httpx has no public way to choose the network backend; its transport only
        # wraps this pool, so building the pool ourselves keeps everything else httpx's.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


def guarded_client(allow: Iterable[str] = ()) -> httpx.AsyncClient:
    """An httpx client whose every connection passes the outbound guard (no redirects):
    for endpoints a tenant names, such as an agent's own LLM provider."""
    return httpx.AsyncClient(
        transport=_GuardedTransport(GuardedNetworkBackend(OutboundGuard(allow))),
        follow_redirects=False,
        trust_env=False,
    )


class HttpxRequester:
    """Performs the `http` element's recorded request; answers {status, headers, body}.

    Every connection, redirects included, goes to an address the outbound guard
    checked after resolving the host (see infra/outbound_guard.py). Bodies larger
    than the cap fail the attempt instead of filling the event store.
    """

    def __init__(
        self,
        allow: Iterable[str] = (),
        max_bytes: int = MAX_RESPONSE_BYTES,
        *,
        guard: OutboundGuard | None = None,
    ) -> None:
        backend = GuardedNetworkBackend(guard or OutboundGuard(allow))
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(backend),
            follow_redirects=False,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,
        )
        self._max_bytes = max_bytes

    async def request(self, request: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
        method = request.get("method", "GET")
        url = request["url"]
        cap = request.get("max_response_bytes") or self._max_bytes
        try:
            async with self._client.stream(
                method,
                url,
                timeout=timeout_s or DEFAULT_TIMEOUT_S,
                follow_redirects=request.get("follow_redirects", True),
                **_content(request),
            ) as response:
                raw = await _read_capped(response, cap)
        except httpx.TooManyRedirects:
            raise EffectFailed(f"more than {MAX_REDIRECTS} redirects from {url}") from None
        except httpx.TimeoutException:
            raise EffectFailed(f"timed out after {timeout_s or DEFAULT_TIMEOUT_S} s") from None
        except httpx.HTTPError as exc:
            raise EffectFailed(f"{type(exc).__name__} calling {url}: {exc}") from None
        status = response.status_code
        accepted = request.get("accept_status") or ()
        if not (200 <= status < 300 or status in accepted):
            excerpt = raw[:_ERROR_EXCERPT].decode(errors="replace")
            raise EffectFailed(f"HTTP {status} from {method} {response.url}: {excerpt}".rstrip())
        return {"status": status, "headers": dict(response.headers), "body": _body(response, raw)}

    async def close(self) -> None:
        await self._client.aclose()


def _content(request: dict[str, Any]) -> dict[str, Any]:
    headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
    body = request.get("body")
    if body is None:
        return {"headers": headers}
    if isinstance(body, str | bytes):
        return {"headers": headers, "content": body}
    return {"headers": headers, "json": body}


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise EffectFailed(_too_large(cap, f"it declares {declared} bytes"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb counts in full
        size += len(chunk)
        if size > cap:
            raise EffectFailed(_too_large(cap, "it kept coming"))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(cap: int, why: str) -> str:
    return (
        f"response body larger than the {cap} byte cap ({why}); "
        "raise the element's `max_response_bytes` to accept more"
    )


def _body(response: httpx.Response, raw: bytes) -> Any:
    if "json" in response.headers.get("content-type", "").lower() and raw.strip():
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError:
            pass
    try:
        return raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")
