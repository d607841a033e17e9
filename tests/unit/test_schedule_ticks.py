"""The pure side of schedules: which ticks a catch-up starts, the ids ticks derive, and
from which version a schedule has been live."""

from __future__ import annotations

from typing import Any

import pytest

from domain.clock import iso, parse_iso
from domain.events import ProcessArchived, ProcessSaved
from domain.process import Process
from domain.schedules import (
    live_schedules,
    missed_ticks,
    tick_execution_id,
    tick_input,
    tick_trigger,
)
from domain.triggers import MAX_CATCH_UP, ScheduleTrigger

T0 = parse_iso("2026-01-05T00:00:00Z")


def every(seconds: float, catch_up: Any = "latest") -> ScheduleTrigger:
    return ScheduleTrigger(key="job", every_s=seconds, catch_up=catch_up)


@pytest.mark.parametrize(
    ("catch_up", "expected"), [("latest", [5]), ("all", [2, 3, 4, 5]), ("none", [])]
)
def test_the_ticks_missed_since_the_last_fired_start_as_catch_up_says(
    catch_up: str, expected: list[int]
) -> None:
    missed = missed_ticks(every(60, catch_up), T0 + 60, T0 + 5 * 60 + 30)
    assert missed == [T0 + 60 * i for i in expected]


def test_nothing_missed_starts_nothing_whatever_catch_up_says() -> None:
    assert missed_ticks(every(60, "all"), T0 + 60, T0 + 119) == []
    assert missed_ticks(every(60, "latest"), T0 + 60, T0 + 60) == []


def test_catch_up_all_starts_at_most_the_latest_hundred() -> None:
    missed = missed_ticks(every(1, "all"), T0, T0 + 10_000)
    assert len(missed) == MAX_CATCH_UP
    assert missed[-1] == T0 + 10_000


def test_a_tick_derives_one_id_per_tenant_process_key_and_instant() -> None:
    one = tick_execution_id("acme", "p", "job", T0)
    assert one == tick_execution_id("acme", "p", "job", T0)
    others = {
        tick_execution_id("other", "p", "job", T0),
        tick_execution_id("acme", "q", "job", T0),
        tick_execution_id("acme", "p", "job2", T0),
        tick_execution_id("acme", "p", "job", T0 + 1),
    }
    assert one not in others and len(others) == 4


def test_a_tick_starts_with_the_schedules_input_and_says_what_started_it() -> None:
    trigger = ScheduleTrigger(key="job", every_s=60, input={"a": 1, "scheduled_at": "mine"})
    assert tick_input(trigger, T0) == {"a": 1, "scheduled_at": iso(T0)}
    assert tick_trigger(trigger, T0) == {"type": "schedule", "key": "job", "at": iso(T0)}


def _saved(version: int, triggers: list[dict[str, Any]]) -> ProcessSaved:
    return ProcessSaved(
        at=iso(T0 + version),
        actor="alice",
        version=version,
        project_id="p",
        app_id="a",
        definition={"triggers": triggers},
    )


def test_a_schedule_is_live_from_the_first_version_of_its_unbroken_run() -> None:
    job = {"key": "job", "type": "schedule", "every_s": 60}
    changed = {**job, "every_s": 120}
    other = {"key": "other", "type": "schedule", "cron": "0 2 * * *"}
    versions = [[job], [job, other], [changed, other], [other], [changed, other]]
    process = Process.rebuild("p", [_saved(i + 1, t) for i, t in enumerate(versions)])

    live = live_schedules(process)

    assert live["other"].since_version == 2 and live["other"].since == iso(T0 + 2)
    # Dropped in version 4 and back in 5: a new stretch, whose ticks are not the old one's.
    assert live["job"].since_version == 5 and live["job"].trigger.every_s == 120


def test_an_archived_process_has_no_live_schedule() -> None:
    job = {"key": "job", "type": "schedule", "every_s": 60}
    archived = ProcessArchived(at=iso(T0 + 9), actor="alice")
    assert live_schedules(Process.rebuild("p", [_saved(1, [job]), archived])) == {}


def test_the_tick_after_a_tick_is_always_later_even_for_a_fractional_interval() -> None:
    from domain.triggers import next_tick

    for every_s in (5.01, 5.07, 0.3 + 1, 7.77):
        trigger = every(every_s)
        t = T0
        for _ in range(200):
            later = next_tick(trigger, t)
            assert t < later <= t + every_s + 1e-6
            t = later
