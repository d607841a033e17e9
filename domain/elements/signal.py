"""The `signal` element: the execution waits, durably, for a person or another system."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.elements.base import ElementType
from domain.expressions import Scope

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_WAIT_S = 366 * 24 * 3600
TIMED_OUT = "timed out"


class SignalParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = msgspec.field()
    timeout_s: float | None = None
    # A JSON Schema the signal's data must fit; checked as a schema at save (the use
    # case: the domain imports no schema library) and applied when a signal is sent.
    schema: dict[str, Any] | bool | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError("name must be 1-64 letters, digits, or _ . -")
        if self.timeout_s is not None and not 0 < self.timeout_s <= MAX_WAIT_S:
            raise ValueError(f"timeout_s must be more than 0 and at most {MAX_WAIT_S}")


class Signal(ElementType):
    """Waits for the oldest signal of its name not yet taken, sent before or after."""

    name = "signal"
    description = (
        "Waits, durably, for a signal of `name` (POST /executions/{id}/signals/{name}); "
        "output = {data, by, at}. With `timeout_s`, fails with `timed out` when none comes."
    )
    params_type = SignalParams
    side_effects = True

    def effect(self, prepared: SignalParams, scope: Scope) -> Any:
        # Nothing is performed: the execution records NodeWaiting and parks.
        return None
