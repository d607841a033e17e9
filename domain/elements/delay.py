from __future__ import annotations

from typing import Any

import msgspec

from domain.elements.base import ElementType, Retry
from domain.expressions import Scope

MAX_DELAY_S = 366 * 24 * 3600


class DelayParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seconds: float = msgspec.field()
    retry: Retry | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.seconds <= MAX_DELAY_S:
            raise ValueError(f"seconds must be between 0 and {MAX_DELAY_S}")


class Delay(ElementType):
    """A durable timer: the wake-up time is recorded, so it survives a restart."""

    name = "delay"
    description = "Waits `seconds` on a durable timer; output = input."
    params_type = DelayParams
    side_effects = True

    def effect(self, prepared: DelayParams, scope: Scope) -> Any:
        return {"seconds": prepared.seconds}
