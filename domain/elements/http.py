from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from domain.elements.base import ElementFailure, ElementType, Retry, evaluate_or_fail
from domain.expressions import Scope, Template, compile_value, render_value

MAX_RESPONSE_BYTES_LIMIT = 16 << 20  # answers are stored in events: keep them bounded


class HttpParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = {}
    body: Any = None
    timeout_s: float | None = None
    retry: Retry | None = None
    accept_status: list[int] | None = None
    max_response_bytes: int | None = None
    follow_redirects: bool = True

    def __post_init__(self) -> None:
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if any(not 100 <= s <= 599 for s in self.accept_status or ()):
            raise ValueError("accept_status holds HTTP status codes (100 to 599)")
        limit = MAX_RESPONSE_BYTES_LIMIT
        if self.max_response_bytes is not None and not 1 <= self.max_response_bytes <= limit:
            raise ValueError(f"max_response_bytes must be between 1 and {limit}")


class Http(ElementType):
    name = "http"
    description = (
        "Calls an HTTP endpoint (url, headers and body may hold {{ … }} templates); "
        "output = {status, headers, body}, a JSON body parsed. A non-2xx answer fails "
        "the attempt unless `accept_status` lists it."
    )
    params_type = HttpParams
    side_effects = True

    def prepare(self, params: HttpParams) -> dict[str, Any]:
        prepared: dict[str, Any] = {
            "method": params.method,
            "url": Template(params.url, secrets=True),
            "headers": compile_value(params.headers, secrets=True),
            "body": compile_value(params.body, secrets=True),
            "accept_status": params.accept_status,
        }
        # Only when set, so requests recorded before these existed are decided the same.
        if params.max_response_bytes is not None:
            prepared["max_response_bytes"] = params.max_response_bytes
        if not params.follow_redirects:
            prepared["follow_redirects"] = False
        return prepared

    def effect(self, prepared: dict[str, Any], scope: Scope) -> Any:
        request = evaluate_or_fail(render_value, prepared, scope)
        _check_url(request["url"])
        return request


def _check_url(url: Any) -> None:
    if not isinstance(url, str):
        raise ElementFailure(f"url must render to a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ElementFailure(f"url must be an absolute http:// or https:// URL, got {url!r}")
