"""Schedules as the engines fire them: which are live, which ticks are due, what each starts.

Pure: the engine brings the clock. A schedule is live as long as the latest
version of its process has it unchanged and the process is not archived; the
version from which it has been so (`since_version`) names that stretch, so a
tick decided for a schedule that was dropped, changed or re-added since is
recognised and not started.
"""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, uuid5

import msgspec

from domain.clock import iso
from domain.process import Process
from domain.triggers import ScheduleTrigger, ticks_between


class LiveSchedule(msgspec.Struct, frozen=True):
    trigger: ScheduleTrigger
    since_version: int  # the first version of the unbroken run of versions that had it
    since: str  # when that version was saved: no tick at or before it fires


def live_schedules(process: Process) -> dict[str, LiveSchedule]:
    """The process's live schedules by key (none once archived)."""
    live: dict[str, LiveSchedule] = {}
    for trigger in process.schedules():
        since = process.version
        while since > 1 and _schedule_of(process, since - 1, trigger.key) == trigger:
            since -= 1
        live[trigger.key] = LiveSchedule(trigger, since, process.versions[since].at)
    return live


def _schedule_of(process: Process, version: int, key: str) -> ScheduleTrigger | None:
    for raw in process.versions[version].definition.get("triggers") or []:
        if raw.get("type") == "schedule" and raw.get("key") == key:
            try:
                return msgspec.convert(raw, ScheduleTrigger)
            except msgspec.ValidationError:
                return None
    return None


def tick_execution_id(tenant: str, process_id: str, key: str, tick: float) -> str:
    """The one execution a tick starts: every engine, and every retry, derives the same id."""
    return str(uuid5(NAMESPACE_URL, f"loom:{tenant}:schedule:{process_id}:{key}:{iso(tick)}"))


def tick_input(trigger: ScheduleTrigger, tick: float) -> dict[str, Any]:
    return {**(trigger.input or {}), "scheduled_at": iso(tick)}


def tick_trigger(trigger: ScheduleTrigger, tick: float) -> dict[str, Any]:
    return {"type": "schedule", "key": trigger.key, "at": iso(tick)}


def missed_ticks(trigger: ScheduleTrigger, after: float, now: float) -> list[float]:
    """Of the ticks after `after` (the last fired, or when the schedule began) up to `now`,
    missed while no engine ran, those to start now: as the schedule's `catch_up` says."""
    missed = ticks_between(trigger, after, now)
    if not missed or trigger.catch_up == "none":
        return []
    if trigger.catch_up == "latest":
        return missed[-1:]
    return missed  # "all": ticks_between keeps at most MAX_CATCH_UP, the latest


__all__ = [
    "LiveSchedule",
    "live_schedules",
    "missed_ticks",
    "tick_execution_id",
    "tick_input",
    "tick_trigger",
]
