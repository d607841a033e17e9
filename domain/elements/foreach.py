"""The `foreach` element: one child execution per item of a list, a few at a time."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.children import spawn_request
from domain.elements.base import ElementFailure, ElementType, evaluate_or_fail
from domain.expressions import Expression, Scope

MAX_ITEMS = 10_000
MAX_CONCURRENCY = 100


class ForeachParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    items: str = msgspec.field()  # CEL giving a list
    process_id: str = msgspec.field()
    version: int | None = None
    concurrency: int = 10
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
        if self.version is not None and self.version < 1:
            raise ValueError("version must be 1 or more")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")


class Foreach(ElementType):
    name = "foreach"
    description = (
        "Runs one child execution of `process_id` per item of `items` (CEL list, at most "
        f"{MAX_ITEMS:,}) with input {{item, index}}, `concurrency` at once; output = "
        "{results: [each child's output, in item order]}. The first failure cancels the rest."
    )
    params_type = ForeachParams
    side_effects = True
    spawns = True

    def prepare(self, params: ForeachParams) -> tuple[Expression, int]:
        return Expression(params.items), params.concurrency

    def effect(self, prepared: tuple[Expression, int], scope: Scope) -> Any:
        expression, concurrency = prepared
        items = evaluate_or_fail(expression.evaluate, scope)
        if not isinstance(items, list):
            raise ElementFailure(f"items must be a list, got {type(items).__name__}")
        if len(items) > MAX_ITEMS:
            raise ElementFailure(f"items holds {len(items):,} items, more than {MAX_ITEMS:,}")
        return spawn_request(items, concurrency, each=True)
