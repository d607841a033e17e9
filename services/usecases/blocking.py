"""Calling the blocking stores from async code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from domain.ports import StoreUnavailable
from services.usecases.errors import Unavailable

T = TypeVar("T")


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a store call on a worker thread (structlog's context goes along).

    A store that cannot be reached becomes the API's 503.
    """
    try:
        return await asyncio.to_thread(fn, *args)
    except StoreUnavailable as exc:
        raise Unavailable(f"the event store is unavailable: {exc}") from None
