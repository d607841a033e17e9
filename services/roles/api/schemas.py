"""Request bodies of the API, decoded once at the edge (kept apart from domain events),
and the answers the routes build here themselves (the use cases type their own)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from domain.definition import ThreadDef
from projections.catalog import ProcessSummary


class SaveProcessIn(msgspec.Struct, frozen=True):
    project: str
    app: str
    name: str
    threads: list[dict[str, Any]]
    triggers: list[dict[str, Any]] = []
    expected_version: int | None = None


class TriggerOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A trigger as saved, with what a caller needs: a webhook's `url`, a schedule's `next_at`."""

    key: str
    type: Literal["webhook", "schedule"]
    method: str | None = None
    respond: str | None = None
    timeout_s: float | None = None
    secret: str | None = None
    cron: str | None = None
    every_s: float | None = None
    timezone: str | None = None
    input: dict[str, Any] | None = None
    catch_up: str | None = None
    url: str | None = None  # /hooks/<token>
    next_at: str | None = None


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


class ProcessSavedOut(msgspec.Struct, kw_only=True):
    """What a save answers: the version it made, and the ids of its threads and elements."""

    process_id: str
    version: int
    project_id: str
    app_id: str
    threads: dict[str, str]
    elements: dict[str, str]
    triggers: list[TriggerOut] = []


class ProcessOut(ProcessSummary, kw_only=True):
    """A process as GET /processes/{id} answers it: the listed header of the version
    asked for, with that version's threads as they were saved."""

    threads: list[ThreadDef]
    triggers: list[TriggerOut] = []


class ElementTypeOut(msgspec.Struct, kw_only=True):
    type: str
    description: str
    params_schema: dict[str, Any]
    ports: list[str]
    side_effects: bool


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


class ScheduleTicksOut(msgspec.Struct, kw_only=True):
    """The next ticks of a schedule as it would be saved (the Studio shows them as you type)."""

    next: list[str]
