"""What every route shares: the error answers it documents, and the caller."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi import ResponseSpec

from infra.auth import Identity
from services.roles.api.schemas import ErrorOut

_ERRORS = {
    400: "The request is not the JSON or the parameters asked for",
    401: "The bearer token is missing, expired or not to be trusted",
    404: "Nothing of that id in the caller's tenant",
    409: "A stale `expected_version`, a reused `Idempotency-Key`, or a finished execution",
    413: "The body is over 1 MiB",
    422: "The request breaks a rule; `key` names the offending element",
    429: (
        "The tenant is over one of its limits (executions running, starts per second): "
        "`limit` names it; retry after the `Retry-After` header's seconds. Nothing started"
    ),
    503: "A backing store is unavailable; retry later",
}


def error_answers(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers of a route for the OpenAPI document; every route may answer 401, 503."""
    return {
        code: ResponseSpec(
            data_container=ErrorOut, description=_ERRORS[code], generate_examples=False
        )
        for code in sorted({*codes, 401, 503})
    }


def caller(request: Request[Any, Any, Any]) -> Identity:
    user = request.user
    assert isinstance(user, Identity)
    return user
