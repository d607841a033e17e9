"""Child executions of `subprocess` and `foreach` elements, as their parent sees them.

A child's id is derived from (parent id, element, attempt, index), so deciding the
same launch twice (a restart, a second engine, a replay) names the same child, and
the store, which takes a new stream only once, starts it once. Which children are
launched is a fold too: `concurrency` at first, one more each time one completes.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import msgspec

from domain.events import ChildEnded, Event, NodeExecuting

MAX_DEPTH = 10


# A fixed namespace, so any parent id (a UUID from the API, a name in a test) derives one.
_CHILDREN = uuid.UUID("6f1d3c2a-8b4e-5a7f-9c1d-2e3f4a5b6c7d")


@functools.lru_cache(maxsize=65_536)  # the engine, the fold and the status ask for each
def child_id(parent_id: str, element: str, attempt: int, index: int) -> str:
    return str(uuid.uuid5(_CHILDREN, f"{parent_id}/{element}/{attempt}/{index}"))


def spawn_request(items: list[Any], concurrency: int, each: bool) -> dict[str, Any]:
    """The request a subprocess or foreach element records when it starts (its
    NodeExecuting input): what `Children` and the status document read back."""
    return {"items": items, "concurrency": concurrency, "each": each}


def is_spawn_request(request: Any) -> bool:
    return isinstance(request, dict) and request.keys() == {"items", "concurrency", "each"}


class ChildStart(msgspec.Struct, frozen=True, kw_only=True):
    """A child the parent decided to start (the engine records its start with the decision)."""

    execution_id: str
    process_id: str
    version: int | None  # None: the latest when it starts
    input: Any
    element: str
    attempt: int
    index: int
    depth: int


class Children:
    """One attempt of a subprocess or foreach element: its items and what became of them."""

    __slots__ = (
        "attempt",
        "concurrency",
        "deadline",
        "each",
        "ended",
        "failed",
        "items",
        "launched",
    )

    def __init__(self, request: dict[str, Any], attempt: int, deadline: str | None) -> None:
        self.items: list[Any] = request["items"]
        self.each: bool = request["each"]
        self.concurrency: int = request["concurrency"]
        self.attempt: int = attempt
        self.launched: int = min(len(self.items), self.concurrency)
        self.ended: dict[int, ChildEnded] = {}
        self.failed = False
        self.deadline = deadline  # the attempt's `timeout_s` runs out (a durable timer)

    def end(self, event: ChildEnded) -> int | None:
        """Fold an ended child; the index of the child this lets start, if any."""
        self.ended[event.index] = event
        if event.status != "completed":
            self.failed = True
            return None
        if self.launched < len(self.items):
            self.launched += 1
            return self.launched - 1
        return None

    def input_of(self, index: int) -> Any:
        item = self.items[index]
        return {"item": item, "index": index} if self.each else item

    def running(self) -> list[int]:
        """Launched and not ended, in item order."""
        return [i for i in range(self.launched) if i not in self.ended]

    @property
    def done(self) -> bool:
        return len(self.ended) == len(self.items) and not self.failed

    def output(self) -> Any:
        if not self.each:
            return self.ended[0].output
        return {"results": [self.ended[i].output for i in range(len(self.items))]}


def launched_children(execution_id: str, history: list[Event]) -> list[str]:
    """The ids of every child an execution launched, attempt by attempt, in the
    order of its history: what `loom replay --tree` walks. Read from the history
    alone, with the fold's own rule for what a completed child lets start."""
    attempts: dict[tuple[str, int], Children] = {}
    for event in history:
        if isinstance(event, NodeExecuting) and is_spawn_request(event.input):
            attempts[(event.element, event.attempt)] = Children(event.input, event.attempt, None)
        elif isinstance(event, ChildEnded):
            children = attempts.get((event.element, event.attempt))
            if children is not None:
                children.end(event)
    return [
        child_id(execution_id, element, attempt, index)
        for (element, attempt), children in attempts.items()
        for index in range(children.launched)
    ]
