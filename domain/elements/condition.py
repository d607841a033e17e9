from __future__ import annotations

import msgspec

from domain.elements.base import ElementFailure, ElementType, Outcome, evaluate_or_fail
from domain.expressions import Expression, Scope


class ConditionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    expression: str


class Condition(ElementType):
    name = "condition"
    description = "Routes its input to port `true` or `false` by a boolean CEL expression."
    params_type = ConditionParams
    ports = ("true", "false")

    def prepare(self, params: ConditionParams) -> Expression:
        return Expression(params.expression)

    def run(self, prepared: Expression, scope: Scope) -> Outcome:
        value = evaluate_or_fail(prepared.evaluate, scope)
        if not isinstance(value, bool):
            raise ElementFailure(f"condition {prepared.source!r} gave {value!r}, not a bool")
        return Outcome(scope.input, "true" if value else "false")
