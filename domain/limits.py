"""The size every value an execution records is held to: element results and inputs.

Checked before an event is decided, so an oversized value is never stored, published
or folded. Set once at start by the composition root (`LOOM_MAX_RESULT_BYTES`); a
replay on a Loom with another limit may decide differently, as it should.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.errors import DomainError

DEFAULT_RESULT_BYTES = 1 << 20
_encode = msgspec.json.Encoder().encode


class ValueTooLarge(DomainError):
    """A value is larger than the limit; nothing was recorded."""


class _Limits:
    result_bytes = DEFAULT_RESULT_BYTES


LIMITS = _Limits()


def set_result_limit(result_bytes: int) -> None:
    if result_bytes < 1024:
        raise ValueError("the result limit must be at least 1024 bytes")
    LIMITS.result_bytes = result_bytes


def oversize(value: Any, what: str) -> str | None:
    """Why `value` may not be recorded, or None when it fits (its JSON size is measured)."""
    limit = LIMITS.result_bytes
    if isinstance(value, str):
        # A str's UTF-8 length is at least its length: most strings are decided here.
        if len(value) * 4 + 2 <= limit:
            return None
    elif value is None or isinstance(value, bool | int | float):
        return None
    try:
        size = len(_encode(value))
    except (TypeError, msgspec.EncodeError, OverflowError):
        return None  # not JSON: refused where it is encoded, with its own message
    if size <= limit:
        return None
    return f"{what} is {size} bytes, over the limit of {_human(limit)}"


def check_size(value: Any, what: str) -> None:
    """Raise ValueTooLarge when `value` is over the limit."""
    reason = oversize(value, what)
    if reason is not None:
        raise ValueTooLarge(reason)


def _human(limit: int) -> str:
    if limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB ({limit} bytes)"
    if limit % 1024 == 0:
        return f"{limit >> 10} KiB ({limit} bytes)"
    return f"{limit} bytes"
