"""What every element type has: typed params, ports, and either a pure run or an effect."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from domain.errors import ExpressionError
from domain.expressions import Scope


class Retry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_attempts: int = msgspec.field(default=1)
    initial_interval_s: float = 1.0
    backoff: float = 2.0
    max_interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_attempts > 100:
            raise ValueError("retry.max_attempts must be between 1 and 100")
        if self.initial_interval_s < 0 or self.max_interval_s < 0 or self.backoff < 1:
            raise ValueError("retry intervals must be >= 0 and backoff >= 1")

    def interval_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.initial_interval_s * self.backoff ** (attempt - 1), self.max_interval_s)


class NoParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Outcome(msgspec.Struct, frozen=True):
    """What a pure element decided: the port it leaves by and its output."""

    output: Any
    port: str = "out"


class ElementFailure(Exception):
    """The element failed; the message becomes the NodeFailed error."""


class ElementType:
    """One kind of element. Subclasses set the class attributes and override run/effect."""

    name: ClassVar[str]
    description: ClassVar[str]
    params_type: ClassVar[type[msgspec.Struct]] = NoParams
    ports: ClassVar[tuple[str, ...]] = ("out",)
    side_effects: ClassVar[bool] = False
    # Runs child executions (subprocess, foreach) instead of an effect of the engine's.
    spawns: ClassVar[bool] = False
    is_join: ClassVar[bool] = False

    def parse(self, params: dict[str, Any]) -> Any:
        """Typed params; raises ValueError naming what does not fit."""
        try:
            return msgspec.convert(params, self.params_type)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from None

    def prepare(self, params: Any) -> Any:
        """Compile whatever the params hold (expressions, templates); raises ExpressionError."""
        return params

    def run(self, prepared: Any, scope: Scope) -> Outcome:
        """Pure elements: decide the outcome from the input alone."""
        raise NotImplementedError

    def effect(self, prepared: Any, scope: Scope) -> Any:
        """Effect elements: the request to perform, recorded before it runs."""
        raise NotImplementedError

    def retry(self, params: Any) -> Retry:
        return getattr(params, "retry", None) or Retry()

    def timeout_s(self, params: Any) -> float | None:
        return getattr(params, "timeout_s", None)

    def params_schema(self) -> dict[str, Any]:
        return msgspec.json.schema(self.params_type)


def evaluate_or_fail(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ExpressionError as exc:
        raise ElementFailure(exc.detail) from None
