from __future__ import annotations

import msgspec

from domain.elements.base import ElementFailure, ElementType, Outcome, evaluate_or_fail
from domain.expressions import Scope, Template


class FailParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    message: str = "failed"


class Fail(ElementType):
    name = "fail"
    description = "Fails the execution with a message (a `{{ … }}` template)."
    params_type = FailParams

    def prepare(self, params: FailParams) -> Template:
        return Template(params.message)

    def run(self, prepared: Template, scope: Scope) -> Outcome:
        # A template that cannot be rendered still fails the element, never the command.
        message = evaluate_or_fail(prepared.render, scope)
        raise ElementFailure(message if isinstance(message, str) else str(message))
