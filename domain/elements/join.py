from __future__ import annotations

from typing import Any

from domain.elements.base import ElementType, Outcome
from domain.expressions import Scope


class Join(ElementType):
    name = "join"
    description = (
        "Waits for every incoming branch (completed or skipped); its input and output are "
        "the map of upstream key → output."
    )
    is_join = True

    def run(self, prepared: Any, scope: Scope) -> Outcome:
        return Outcome(scope.input)
