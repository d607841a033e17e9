"""Schedules: each tick starts one execution, at the right instants, however many engines.

Against real SQLite and PostgreSQL with a clock the test moves (the scheduler is
woken after each move, as `loom.engine.wake_timers()` wakes delays); one test on
the wall clock. What started is read from the event store, under the ids the
ticks derive (domain.schedules.tick_execution_id).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from domain.clock import iso, parse_iso
from domain.events import ProcessSaved
from domain.schedules import tick_execution_id
from infra.settings import Settings
from services.bootstrap import Loom
from tests.harness.schedules import (
    T0,
    clock_at,
    every,
    executions_of,
    move,
    process,
    save,
    started,
    tick_started,
    ticks,
)
from tests.nats_support import eventually
from tests.support import SECRETS_KEY

Opener = Callable[..., Awaitable[Loom]]


@pytest.fixture
async def looms(database_url: str) -> AsyncIterator[Opener]:
    """Open Looms on the test's database (stopped at the end unless the test stopped them)."""
    opened: list[Loom] = []

    async def open_(clock: Any = None) -> Loom:
        env = {"LOOM_DATABASE_URL": database_url, "LOOM_SECRETS_KEY": SECRETS_KEY}
        loom = Loom(Settings.from_env(env), clock=clock)
        await loom.start()
        opened.append(loom)
        return loom

    yield open_
    for loom in opened:
        if not getattr(loom, "stopped", False):
            await loom.stop()


async def stop(loom: Loom) -> None:
    await loom.stop()
    loom.stopped = True  # type: ignore[attr-defined]


async def test_every_tick_of_an_interval_starts_one_execution_with_the_schedules_input(
    looms: Opener,
) -> None:
    clock = clock_at(T0 + 1)
    loom = await looms(clock)
    pid = await save(loom, process("Hourly", [every("tick", 60, input={"report": "sales"})]))

    for i in (1, 2, 3):
        move(clock, T0 + 60 * i + 0.5, loom)
        await tick_started(loom, pid, "tick", T0 + 60 * i)

    assert ticks(loom, pid) == [iso(T0 + 60 * i) for i in (1, 2, 3)]
    first = started(loom, pid, "tick", T0 + 60)
    assert first is not None
    assert first.input == {"report": "sales", "scheduled_at": iso(T0 + 60)}
    assert first.actor == "schedule:tick"
    assert first.trigger == {"type": "schedule", "key": "tick", "at": iso(T0 + 60)}
    status = await loom.executions.status("acme", tick_execution_id("acme", pid, "tick", T0 + 60))
    assert status.status == "completed"


@pytest.mark.parametrize(
    ("cron", "saved_at", "until", "expected"),
    [
        # 09:00 New York: 14:00Z in winter time, 13:00Z once clocks went forward on 8 March.
        (
            "0 9 * * *",
            "2026-03-07T00:00:00Z",
            "2026-03-09T20:00:00Z",
            ["2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"],
        ),
        # 02:30 does not exist on 8 March (02:00 → 03:00): cron's rule fires it at 03:00 EDT.
        (
            "30 2 * * *",
            "2026-03-07T00:00:00Z",
            "2026-03-09T20:00:00Z",
            ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        # 01:30 happens twice on 1 November (02:00 EDT → 01:00 EST): it fires once.
        (
            "30 1 * * *",
            "2026-10-31T00:00:00Z",
            "2026-11-02T20:00:00Z",
            ["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
    ],
)
async def test_a_cron_in_a_time_zone_fires_at_the_right_instants_across_daylight_saving(
    looms: Opener, cron: str, saved_at: str, until: str, expected: list[str]
) -> None:
    clock = clock_at(parse_iso(saved_at))
    loom = await looms(clock)
    schedule = {"key": "ny", "type": "schedule", "cron": cron, "timezone": "America/New_York"}
    pid = await save(loom, process("Morning", [schedule]))

    move(clock, parse_iso(until), loom)
    await tick_started(loom, pid, "ny", parse_iso(expected[-1]))

    assert [t.replace(".000000", "") for t in ticks(loom, pid)] == expected


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", [1, 5, 6]), ("all", [1, 2, 3, 4, 5, 6]), ("none", [1, 6])],
)
async def test_ticks_missed_while_no_engine_ran_start_as_catch_up_says(
    looms: Opener, catch_up: str, expected: list[int]
) -> None:
    clock = clock_at(T0 + 1)
    first = await looms(clock)
    pid = await save(first, process("Nightly", [every("job", 60, catch_up=catch_up)]))
    move(clock, T0 + 60.5, first)
    await tick_started(first, pid, "job", T0 + 60)
    await stop(first)

    clock.t = T0 + 5 * 60 + 30  # ticks 2 to 5 pass with no Loom running
    second = await looms(clock)
    move(clock, T0 + 6 * 60 + 0.5, second)  # tick 6: a running engine's, always started
    for i in expected:
        await tick_started(second, pid, "job", T0 + 60 * i)

    assert ticks(second, pid) == [iso(T0 + 60 * i) for i in expected]


@pytest.mark.parametrize("how", ["new version without it", "archived"])
async def test_a_schedule_dropped_by_a_new_version_or_archived_stops_at_once(
    looms: Opener, how: str
) -> None:
    clock = clock_at(T0 + 1)
    loom = await looms(clock)
    pid = await save(loom, process("Stopped", [every("job", 60)]))
    marker = await save(loom, process("Marker", [every("beat", 60)]))
    move(clock, T0 + 60.5, loom)
    await tick_started(loom, pid, "job", T0 + 60)
    await tick_started(loom, marker, "beat", T0 + 60)

    if how == "archived":
        await loom.processes.archive("acme", "alice", pid)
    else:
        await save(loom, process("Stopped", []), process_id=pid, expected_version=1)
    move(clock, T0 + 4 * 60 + 0.5, loom)
    # The marker's ticks 2 to 4 start one after another; the stopped schedule's tick 2
    # was due with the marker's tick 2.
    await tick_started(loom, marker, "beat", T0 + 4 * 60)

    assert ticks(loom, marker) == [iso(T0 + 60 * i) for i in (1, 2, 3, 4)]
    assert ticks(loom, pid) == [iso(T0 + 60)]
    assert all(started(loom, pid, "job", T0 + 60 * i) is None for i in (2, 3, 4))


async def test_a_new_version_that_changes_a_schedule_fires_the_new_one_only(
    looms: Opener,
) -> None:
    clock = clock_at(T0 + 1)
    loom = await looms(clock)
    pid = await save(loom, process("Changed", [every("job", 60)]))
    move(clock, T0 + 60.5, loom)
    await tick_started(loom, pid, "job", T0 + 60)

    await save(loom, process("Changed", [every("job", 120)]), process_id=pid, expected_version=1)
    move(clock, T0 + 4 * 60 + 0.5, loom)
    await tick_started(loom, pid, "job", T0 + 4 * 60)

    # 180 s was a tick of the old schedule only; 120 s and 240 s are the new one's.
    assert ticks(loom, pid) == [iso(T0 + 60), iso(T0 + 120), iso(T0 + 240)]


@pytest.mark.postgres
async def test_two_looms_on_one_postgresql_start_each_tick_once(
    looms: Opener, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("two Looms share one database on PostgreSQL")
    clock = clock_at(T0 + 1)
    one, two = await looms(clock), await looms(clock)
    pid = await save(one, process("Shared", [every("job", 60)]))

    async def both_know_it() -> bool:
        assert two.scheduler is not None
        await two.scheduler.poll()  # the other Loom reads the index every second anyway
        return two.scheduler.live >= 1

    await eventually(both_know_it)
    for i in (1, 2, 3):
        move(clock, T0 + 60 * i + 0.5, one, two)
        await tick_started(one, pid, "job", T0 + 60 * i)
    move(clock, T0 + 4 * 60 + 0.5, two)  # the fourth tick only the second Loom is woken for
    await tick_started(two, pid, "job", T0 + 4 * 60)

    assert ticks(one, pid) == [iso(T0 + 60 * i) for i in (1, 2, 3, 4)]
    assert len(executions_of(one, pid)) == 4


async def test_on_the_wall_clock_a_schedule_every_second_starts_executions(
    looms: Opener, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("once is enough")
    loom = await looms()
    pid = await save(loom, process("Every second", [every("beat", 1)]))
    begun = time.monotonic()

    async def two() -> bool:
        return len(executions_of(loom, pid)) >= 2

    await eventually(two, 5)
    assert time.monotonic() - begun < 5
    first, second = sorted(ticks(loom, pid))[:2]
    assert parse_iso(second) - parse_iso(first) == 1.0


async def test_a_tick_started_but_not_noted_before_a_crash_is_not_started_twice(
    looms: Opener,
) -> None:
    clock = clock_at(T0 + 1)
    first = await looms(clock)
    pid = await save(first, process("Crashing", [every("job", 60, catch_up="all")]))
    # The Loom dies between a tick's start committing and the index noting it fired.
    first.schedule_index.fired = lambda *_: None  # type: ignore[method-assign]
    move(clock, T0 + 60.5, first)
    await tick_started(first, pid, "job", T0 + 60)
    await stop(first)

    clock.t = T0 + 2 * 60 + 30
    second = await looms(clock)  # catch_up: all fires tick 1 again, then tick 2
    move(clock, T0 + 3 * 60 + 0.5, second)
    # Tick 2 is fired by the catch-up after tick 1's second start was answered as done.
    for i in (1, 2, 3):
        await tick_started(second, pid, "job", T0 + 60 * i)

    assert ticks(second, pid) == [iso(T0 + 60 * i) for i in (1, 2, 3)]


async def test_a_save_cut_short_before_its_schedule_was_indexed_fires_after_a_restart(
    looms: Opener,
) -> None:
    clock = clock_at(T0 + 1)
    first = await looms(clock)

    def lost(*_: Any) -> None:
        raise RuntimeError("the process died here")

    first.schedule_index.put = lost  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await save(first, process("Cut short", [every("job", 60)]))
    await stop(first)

    # The catalog projector catches up at start and indexes the schedules of what moved.
    second = await looms(clock)
    (pid,) = {
        str(r.stream_id) for r in second.store.read_all("acme") if isinstance(r.event, ProcessSaved)
    }
    move(clock, T0 + 60.5, second)
    await tick_started(second, pid, "job", T0 + 60)
