"""Triggers: how a process starts by itself, from a webhook call or a schedule's tick.

A definition may list `triggers` beside its threads; the latest version's are the
live ones. Each is checked at save like an element (a bad cron, an unknown time
zone, both or neither of `cron` and `every_s`, a repeated key: refused, naming
the trigger's key). Cron is 5 fields read by `cronsim` in the trigger's time
zone, DST included: a well-kept library rather than arithmetic of our own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from domain.errors import Problem
from domain.secrets import SECRET_NAME

TRIGGER_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_TRIGGERS = 20
MAX_CATCH_UP = 100  # ticks `catch_up: all` starts at most, after the engines were away
MAX_WEBHOOK_TIMEOUT_S = 300.0
MAX_EVERY_S = 366 * 86400  # longer periods are what cron is for


class WebhookTrigger(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="webhook", tag_field="type"
):
    key: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    respond: Literal["accepted", "output"] = "accepted"
    timeout_s: float = 30.0
    secret: str | None = None  # a tenant secret's name: requests must be signed with it


class ScheduleTrigger(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="schedule", tag_field="type"
):
    key: str
    cron: str | None = None
    every_s: float | None = None
    timezone: str = "UTC"
    input: dict[str, Any] | None = None
    catch_up: Literal["latest", "all", "none"] = "latest"


Trigger = WebhookTrigger | ScheduleTrigger


def check_triggers(triggers: list[Trigger]) -> list[Problem]:
    """Every broken rule of the triggers, each naming the trigger's key."""
    problems: list[Problem] = []
    if len(triggers) > MAX_TRIGGERS:
        problems.append(Problem(f"a process has at most {MAX_TRIGGERS} triggers"))
    seen: set[str] = set()
    for trigger in triggers:
        key = trigger.key
        if TRIGGER_KEY.fullmatch(key) is None:
            problems.append(Problem(f"trigger key {key!r} must match {TRIGGER_KEY.pattern}", key))
        if key in seen:
            problems.append(Problem(f"trigger key {key!r} repeats", key))
        seen.add(key)
        problems += [Problem(f"trigger {key!r}: {why}", key) for why in _why_not(trigger)]
    return problems


def _why_not(trigger: Trigger) -> list[str]:
    if isinstance(trigger, WebhookTrigger):
        why = []
        if not 0 < trigger.timeout_s <= MAX_WEBHOOK_TIMEOUT_S:
            why.append(f"timeout_s must be above 0 and at most {MAX_WEBHOOK_TIMEOUT_S:g}")
        if trigger.secret is not None and SECRET_NAME.fullmatch(trigger.secret) is None:
            why.append(f"secret must name a secret ({SECRET_NAME.pattern})")
        return why
    if (trigger.cron is None) == (trigger.every_s is None):
        return ["give exactly one of cron and every_s"]
    try:
        zone = ZoneInfo(trigger.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return [f"unknown timezone {trigger.timezone!r}"]
    if trigger.every_s is not None:
        if not 1 <= trigger.every_s <= MAX_EVERY_S:
            return [f"every_s must be between 1 and {MAX_EVERY_S} (a year)"]
        return []
    assert trigger.cron is not None
    if len(trigger.cron.split()) != 5:
        return [f"cron {trigger.cron!r} must have 5 fields (minute hour day month weekday)"]
    try:
        next(CronSim(trigger.cron, datetime(2000, 1, 1, tzinfo=zone)))
    except (CronSimError, StopIteration) as exc:
        return [f"cron {trigger.cron!r} is not a schedule that fires: {exc}"]
    return []


def next_tick(trigger: ScheduleTrigger, after: float) -> float:
    """The schedule's first tick strictly after `after` (seconds since the epoch)."""
    if trigger.every_s is not None:
        # Ticks on a grid from the epoch, so every engine computes the same instants.
        n = after // trigger.every_s + 1
        while n * trigger.every_s <= after:  # floats: a tick // every_s may fall one short
            n += 1
        return n * trigger.every_s
    assert trigger.cron is not None
    zone = ZoneInfo(trigger.timezone)
    start = datetime.fromtimestamp(after, UTC).astimezone(zone)
    # cronsim starts at the next whole minute; the tick at `after` itself is not "after".
    return next(CronSim(trigger.cron, start)).timestamp()


def ticks_between(trigger: ScheduleTrigger, after: float, upto: float) -> list[float]:
    """Ticks t with after < t <= upto, oldest first, at most MAX_CATCH_UP (the latest kept)."""
    ticks: list[float] = []
    t = next_tick(trigger, after)
    while t <= upto:
        ticks.append(t)
        if len(ticks) > MAX_CATCH_UP:
            ticks.pop(0)
        if trigger.every_s is not None and (upto - t) / trigger.every_s > 10 * MAX_CATCH_UP:
            t = next_tick(trigger, upto - MAX_CATCH_UP * trigger.every_s - 1e-6)
            continue
        t = next_tick(trigger, t)
    return ticks


def next_ticks(trigger: ScheduleTrigger, after: float, count: int) -> list[float]:
    ticks, t = [], after
    for _ in range(count):
        t = next_tick(trigger, t)
        ticks.append(t)
    return ticks


__all__ = [
    "MAX_CATCH_UP",
    "ScheduleTrigger",
    "Trigger",
    "WebhookTrigger",
    "check_triggers",
    "next_tick",
    "next_ticks",
    "ticks_between",
]
