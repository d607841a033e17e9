"""The errors services raise, and how each becomes a JSON `{"detail": …}` response.

Services raise `NotFound`, `Invalid`, `Conflict` or `Unavailable` (and
`TenantOverLimit`, a 429 with `Retry-After`); they never build responses.
Anything a client can send maps to a 4xx here; a 500 means a bug on our side and
is logged with its traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from domain.limits import ValueTooLarge
from domain.ports import ConcurrencyError, StoreUnavailable
from services.usecases.errors import (
    Conflict,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    Unavailable,
    UseCaseError,
)
from services.usecases.tenant_limits import TenantOverLimit

MAX_BODY_BYTES = 1024 * 1024


# What each use-case refusal answers over HTTP.
STATUS_OF: dict[type[UseCaseError], int] = {
    NotFound: HTTP_404_NOT_FOUND,
    Invalid: HTTP_422_UNPROCESSABLE_ENTITY,
    Conflict: HTTP_409_CONFLICT,
    Unavailable: HTTP_503_SERVICE_UNAVAILABLE,
    Unauthorized: 401,
    MethodNotAllowed: 405,
}


def status_of(exc: UseCaseError) -> int:
    for kind in type(exc).__mro__:
        status = STATUS_OF.get(kind)
        if status is not None:
            return status
    return HTTP_500_INTERNAL_SERVER_ERROR


def exception_handlers() -> ExceptionHandlersMap:
    """The handlers `create_app` installs, most specific first."""
    return {
        UseCaseError: _use_case_error,
        TenantOverLimit: _over_limit,
        ValueTooLarge: _too_large,
        StoreUnavailable: _store_unavailable,
        ConcurrencyError: _concurrency_error,
        ValidationException: _validation_error,
        HTTPException: _http_error,
        msgspec.ValidationError: _payload_error,
        msgspec.DecodeError: _json_error,
        UnicodeDecodeError: _json_error,
        RecursionError: _recursion_error,
        Exception: _unexpected_error,
    }


def _log() -> Any:
    # Looked up per use: a module-level proxy caches the configuration of its first
    # use, and tests reconfigure structlog to capture what is logged.
    return structlog.get_logger("loom.api")


def _json(
    body: Mapping[str, Any], status_code: int, headers: Mapping[str, str] | None = None
) -> Response[Any]:
    return Response(content=dict(body), status_code=status_code, headers=dict(headers or {}))


def _store_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Use cases let the store's outage through: it is the edge's to answer, here with 503.
    _log().warning("store_unavailable", error=str(exc))
    return _json({"detail": f"the event store is unavailable: {exc}"}, 503)


def _concurrency_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _json({"detail": f"a concurrent change won: {exc}; reload and retry"}, 409)


def _over_limit(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, TenantOverLimit)
    body = {"detail": exc.detail, "limit": exc.limit, "retry_after_s": exc.retry_after_s}
    headers = {"Retry-After": str(exc.retry_after_s)}
    return _json(body, HTTP_429_TOO_MANY_REQUESTS, headers)


def _too_large(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, ValueTooLarge)
    return _json({"detail": exc.detail}, HTTP_422_UNPROCESSABLE_ENTITY)


def _use_case_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, UseCaseError)
    status = status_of(exc)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR:
        _log().warning("request_unavailable", detail=exc.detail, status_code=status)
    headers = {"Allow": exc.allowed} if isinstance(exc, MethodNotAllowed) else None
    return _json(exc.body(), status, headers)


def _validation_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Litestar says "Validation failed for POST /x" and hides the why in `extra`;
    # the caller needs the why in `detail`.
    assert isinstance(exc, ValidationException)
    problems = _problems(exc.extra)
    detail = "; ".join(problems) if problems else exc.detail
    body: dict[str, Any] = {"detail": detail}
    if problems:
        body["errors"] = problems
    return _json(body, HTTP_400_BAD_REQUEST)


def _problems(extra: Any) -> list[str]:
    if not isinstance(extra, list):
        return []
    problems = []
    for item in extra:
        if not isinstance(item, Mapping) or "message" not in item:
            continue
        key, message = item.get("key"), str(item["message"])
        if key == "data" and message == "'data'":
            problems.append("a JSON request body is required")
        elif key == "data" or not key:
            problems.append(f"request body: {message}")
        else:
            problems.append(f"{key}: {message}")
    return problems


def _http_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    if exc.status_code == HTTP_500_INTERNAL_SERVER_ERROR:
        return _unexpected_error(_, exc)
    return _json({"detail": _http_detail(exc)}, exc.status_code, exc.headers)


def _http_detail(exc: HTTPException) -> str:
    # Litestar turns a body msgspec cannot parse into a bare 400 "Input data was
    # truncated"; say that it is the JSON that is broken.
    root: BaseException = exc
    while root.__cause__ is not None:
        root = root.__cause__
    is_syntax_error = isinstance(root, msgspec.DecodeError) and not isinstance(
        root, msgspec.ValidationError
    )
    if is_syntax_error and not exc.detail.startswith("JSON is malformed"):
        return f"JSON is malformed: {exc.detail}"
    return exc.detail


def _payload_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Routes decode payloads at the edge with msgspec; a payload that does not fit is the
    # client's mistake.
    return _json({"detail": str(exc)}, HTTP_400_BAD_REQUEST)


def _json_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _json({"detail": f"JSON is malformed: {exc}"}, HTTP_400_BAD_REQUEST)


def _recursion_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # msgspec refuses deeply nested JSON with a RecursionError rather than a DecodeError.
    if "deserializing" in str(exc):
        return _json({"detail": "JSON is nested too deeply"}, HTTP_400_BAD_REQUEST)
    return _unexpected_error(request, exc)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log().error(
        "unhandled_exception",
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    return _json({"detail": "internal server error"}, HTTP_500_INTERNAL_SERVER_ERROR)
