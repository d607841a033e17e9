"""Schedules with the roles apart over a real NATS JetStream and PostgreSQL: only engines
fire ticks, and with two engines each tick starts once (read from the store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.clock import iso
from infra.settings import Settings
from services.bootstrap import Loom
from tests.harness.schedules import (
    T0,
    clock_at,
    every,
    executions_of,
    move,
    process,
    tick_started,
    ticks,
)
from tests.nats_support import eventually
from tests.support import SECRETS_KEY

pytestmark = [pytest.mark.nats, pytest.mark.postgres]


@pytest.fixture
def settings(postgres_url: str, postgres_schema: str, nats_url: str) -> Settings:
    database = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={postgres_schema}"
    env = {"LOOM_DATABASE_URL": database, "LOOM_NATS_URL": nats_url}
    return Settings.from_env({**env, "LOOM_SECRETS_KEY": SECRETS_KEY})


@pytest.fixture
async def looms(settings: Settings) -> AsyncIterator[Any]:
    started: list[Loom] = []

    async def loom(clock: Any, *roles: str) -> Loom:
        started.append(Loom(settings, roles=roles, clock=clock))
        await started[-1].start()
        return started[-1]

    yield loom
    for loom_ in started:
        await loom_.stop()


async def test_two_engines_apart_start_each_tick_once_and_the_api_fires_none(looms: Any) -> None:
    clock = clock_at(T0 + 1)
    api = await looms(clock, "api")
    engines = [await looms(clock, "engine"), await looms(clock, "engine", "projector")]
    assert api.scheduler is None
    saved = await api.processes.save("acme", "alice", process("Apart", [every("job", 60)]))
    pid = saved["process_id"]

    async def engines_know_it() -> bool:  # an engine reads the index every second
        return all(e.scheduler is not None and e.scheduler.live >= 1 for e in engines)

    await eventually(engines_know_it)
    for i in (1, 2, 3):
        move(clock, T0 + 60 * i + 0.5, *engines)
        await tick_started(api, pid, "job", T0 + 60 * i)

    assert ticks(api, pid) == [iso(T0 + 60 * i) for i in (1, 2, 3)]
    assert len(executions_of(api, pid)) == 3

    async def completed() -> bool:
        page = await engines[1].executions.list("acme", pid, "completed", 10, None)
        return len(page.items) == 3

    await eventually(completed, 20)
