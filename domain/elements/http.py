from __future__ import annotations

from typing import Any, Literal

import msgspec

from domain.elements.base import ElementType, Retry, evaluate_or_fail
from domain.expressions import Scope, Template, compile_value, render_value


class HttpParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = {}
    body: Any = None
    timeout_s: float | None = None
    retry: Retry | None = None
    accept_status: list[int] | None = None


class Http(ElementType):
    name = "http"
    description = "Calls an HTTP endpoint; output = {status, headers, body}."
    params_type = HttpParams
    side_effects = True

    def prepare(self, params: HttpParams) -> dict[str, Any]:
        return {
            "method": params.method,
            "url": Template(params.url),
            "headers": compile_value(params.headers),
            "body": compile_value(params.body),
            "accept_status": params.accept_status,
        }

    def effect(self, prepared: dict[str, Any], scope: Scope) -> Any:
        return evaluate_or_fail(render_value, prepared, scope)
