"""The `subprocess` element: runs a child execution of another process of the tenant."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.children import spawn_request
from domain.elements.base import ElementType, Retry, evaluate_or_fail
from domain.expressions import Expression, Scope


class SubprocessParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    process_id: str = msgspec.field()
    version: int | None = None  # None: the latest version when the element runs
    input: str | None = None  # CEL; None: this element's input
    retry: Retry | None = None  # each attempt runs a fresh child
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.version < 1:
            raise ValueError("version must be 1 or more")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")


class Subprocess(ElementType):
    name = "subprocess"
    description = (
        "Runs a child execution of `process_id` (of this tenant) with `input` (CEL; "
        "default: this element's input); output = the child's output, its failure fails "
        "this element."
    )
    params_type = SubprocessParams
    side_effects = True
    spawns = True

    def prepare(self, params: SubprocessParams) -> Expression | None:
        return None if params.input is None else Expression(params.input)

    def effect(self, prepared: Expression | None, scope: Scope) -> Any:
        value = scope.input if prepared is None else evaluate_or_fail(prepared.evaluate, scope)
        return spawn_request([value], 1, each=False)
