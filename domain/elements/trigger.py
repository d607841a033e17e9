from __future__ import annotations

from typing import Any

from domain.elements.base import ElementType, Outcome
from domain.expressions import Scope


class Trigger(ElementType):
    name = "trigger"
    description = "Where a thread starts: its output is the execution's input."

    def run(self, prepared: Any, scope: Scope) -> Outcome:
        return Outcome(scope.execution_input)
