"""What a use case refuses, in words a caller can act on, and nothing of HTTP.

The edge that calls a use case decides what each refusal becomes: the api role
maps them to status codes (`services/roles/api/errors.py`), the gateway to
WebSocket close codes, the CLI to exit codes.
"""

from __future__ import annotations

from typing import Any


class UseCaseError(Exception):
    """Base of every refusal of a use case; `extra` holds fields the caller may show."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """`detail` plus any extra fields, as an answer's body carries them."""
        return {"detail": self.detail, **self.extra}


class NotFound(UseCaseError):
    """The thing does not exist for this tenant (another tenant's ids look the same)."""


class Invalid(UseCaseError):
    """The request is well-formed but breaks a rule, naming the offending `key` if any."""

    def __init__(self, detail: str, key: str | None = None, **extra: Any) -> None:
        if key is not None:
            extra["key"] = key
        super().__init__(detail, **extra)
        self.key = key


class Conflict(UseCaseError):
    """A stale `expected_version`, or a reused idempotency key with another body."""


class Unavailable(UseCaseError):
    """A backing store or bus cannot be reached; the caller may retry later."""


class Unauthorized(UseCaseError):
    """The caller's credential does not hold (a webhook call with no or a wrong signature)."""


class MethodNotAllowed(UseCaseError):
    """The thing exists but takes another method (`allowed` names it)."""

    def __init__(self, detail: str, allowed: str) -> None:
        super().__init__(detail)
        self.allowed = allowed
