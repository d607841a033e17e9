"""Request bodies of the API, decoded once at the edge (kept apart from domain events)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec


class SaveProcessIn(msgspec.Struct, frozen=True):
    project: str
    app: str
    name: str
    threads: list[dict[str, Any]]
    expected_version: int | None = None


class StartExecutionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    process_id: str
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    input: Any = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class RerunIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`input` left out reuses the earlier execution's input; `null` is an input too."""

    from_: str = msgspec.field(name="from")
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    input: Any = msgspec.UNSET
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None


class AgentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    system_prompt: str = ""
    model: str = "gpt-4o-mini"
    temperature: float | None = None
    max_tokens: int | None = None
    expected_version: int | None = None


class ProblemOut(msgspec.Struct, frozen=True):
    detail: str
    key: str | None = None


class ErrorOut(msgspec.Struct, frozen=True):
    """Every error answer: a human-readable `detail`, plus what the error adds.

    `key` names the offending element (422); `problems` lists every broken rule of a
    definition; `errors` lists what did not decode (400); `version` is the current
    version when an `expected_version` was stale (409).
    """

    detail: str
    key: str | None = None
    keys: list[str] | None = None
    problems: list[ProblemOut] | None = None
    errors: list[str] | None = None
    version: int | None = None
