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


class AgentIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    system_prompt: str = ""
    model: str = "gpt-4o-mini"
    temperature: float | None = None
    max_tokens: int | None = None
    expected_version: int | None = None
