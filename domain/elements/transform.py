from __future__ import annotations

from typing import Any

import msgspec

from domain.elements.base import ElementType, Outcome, evaluate_or_fail
from domain.expressions import Expression, Scope


class TransformParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    output: dict[str, str] | None = None
    expression: str | None = None

    def __post_init__(self) -> None:
        if (self.output is None) == (self.expression is None):
            raise ValueError("transform needs exactly one of `output` (a map) or `expression`")


class Transform(ElementType):
    name = "transform"
    description = "Computes its output from CEL: a map of field → expression, or one expression."
    params_type = TransformParams

    def prepare(self, params: TransformParams) -> Expression | dict[str, Expression]:
        if params.expression is not None:
            return Expression(params.expression)
        assert params.output is not None
        return {field: Expression(src) for field, src in params.output.items()}

    def run(self, prepared: Any, scope: Scope) -> Outcome:
        if isinstance(prepared, Expression):
            return Outcome(evaluate_or_fail(prepared.evaluate, scope))
        return Outcome({f: evaluate_or_fail(e.evaluate, scope) for f, e in prepared.items()})
