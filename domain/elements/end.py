from __future__ import annotations

from typing import Any

from domain.elements.base import ElementType, Outcome
from domain.expressions import Scope


class End(ElementType):
    name = "end"
    description = "Ends a path; its input becomes part of the execution's output."

    def run(self, prepared: Any, scope: Scope) -> Outcome:
        return Outcome(scope.input)
