"""Per-tenant limits: the token bucket and the count of executions in flight, on a clock
the tests move."""

from __future__ import annotations

import asyncio

import pytest

from domain.ports import StoreUnavailable
from infra.settings import Settings, SettingsError
from services.usecases.tenant_limits import (
    MAX_RUNNING_SETTING,
    STARTS_PER_S_SETTING,
    TenantLimits,
    TenantOverLimit,
    TokenBucket,
)


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


class ReadModel:
    """What the status read model answers for `running(tenant)`, and how often it was asked."""

    def __init__(self) -> None:
        self.ids: dict[str, set[str]] = {}
        self.asked = 0
        self.down = False

    def running(self, tenant: str) -> set[str]:
        self.asked += 1
        if self.down:
            raise StoreUnavailable("read model away")
        return set(self.ids.get(tenant, ()))


# --- the bucket --------------------------------------------------------------------------


def test_a_bucket_starts_full_and_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(rate=5, capacity=10, now=0.0)
    assert [bucket.take(0.0) for _ in range(11)] == [True] * 10 + [False]
    assert bucket.wait_s(0.0) == pytest.approx(0.2)
    assert not bucket.take(0.1)
    assert bucket.take(0.2)
    assert not bucket.take(0.2)
    assert bucket.tokens(100.0) == 10  # never more than its capacity


def test_a_clock_that_steps_back_adds_no_tokens() -> None:
    bucket = TokenBucket(rate=1, capacity=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_a_token_given_back_is_there_again_but_never_past_capacity() -> None:
    bucket = TokenBucket(rate=1, capacity=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    bucket.give_back()
    assert bucket.take(0.0)
    bucket.give_back()
    bucket.give_back()
    bucket.give_back()
    assert bucket.tokens(0.0) == 2


def test_a_bucket_needs_a_rate_and_room_for_one_token() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, capacity=0.5, now=0.0)


# --- starts per second -------------------------------------------------------------------


async def test_a_tenant_past_its_burst_is_refused_with_a_retry_after_and_others_are_not() -> None:
    clock = Clock()
    limits = TenantLimits(clock, starts_per_s=5)
    assert limits.burst == 10
    for i in range(10):
        (await limits.admit("acme", f"a{i}")).started(finished=False)
    with pytest.raises(TenantOverLimit) as refused:
        await limits.admit("acme", "a10")
    assert refused.value.limit == STARTS_PER_S_SETTING
    assert refused.value.retry_after_s == 1
    assert "acme" in refused.value.detail and STARTS_PER_S_SETTING in refused.value.detail
    await limits.admit("globex", "g0")  # another tenant has a bucket of its own
    clock.t += 0.2
    await limits.admit("acme", "a11")
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "a12")


async def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    clock = Clock()
    limits = TenantLimits(clock, starts_per_s=0.1, burst=1)
    await limits.admit("acme", "a")
    with pytest.raises(TenantOverLimit) as refused:
        await limits.admit("acme", "b")
    assert refused.value.retry_after_s == 10
    clock.t += 9.99
    with pytest.raises(TenantOverLimit) as refused:
        await limits.admit("acme", "b")
    assert refused.value.retry_after_s == 1


async def test_a_start_undone_gives_its_token_back() -> None:
    limits = TenantLimits(Clock(), starts_per_s=1, burst=1)
    (await limits.admit("acme", "a")).undo()
    (await limits.admit("acme", "b")).started(finished=True)
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "c")


async def test_zero_means_no_limit() -> None:
    read_model = ReadModel()
    limits = TenantLimits(Clock(), read_model.running, max_running=0, starts_per_s=0)
    for i in range(10_000):
        await limits.admit("acme", str(i))
    assert read_model.asked == 0


# --- executions in flight ----------------------------------------------------------------


async def test_running_executions_count_against_the_limit_without_a_query_per_start() -> None:
    clock, read_model = Clock(), ReadModel()
    read_model.ids["acme"] = {"old"}
    limits = TenantLimits(clock, read_model.running, max_running=3)
    (await limits.admit("acme", "a")).started(finished=False)
    (await limits.admit("acme", "b")).started(finished=False)
    with pytest.raises(TenantOverLimit) as refused:
        await limits.admit("acme", "c")
    assert refused.value.limit == MAX_RUNNING_SETTING
    assert refused.value.retry_after_s == 1
    assert refused.value.detail == (
        "tenant acme has 3 executions running, the limit (LOOM_TENANT_MAX_RUNNING=3)"
    )
    assert read_model.asked == 1
    (await limits.admit("globex", "g")).started(finished=False)  # its own count


async def test_starts_that_finish_in_their_first_transaction_do_not_count() -> None:
    read_model = ReadModel()
    limits = TenantLimits(Clock(), read_model.running, max_running=2)
    for i in range(100):
        (await limits.admit("acme", f"quick{i}")).started(finished=True)
    (await limits.admit("acme", "a")).started(finished=False)
    (await limits.admit("acme", "b")).started(finished=False)
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "c")


async def test_a_start_undone_frees_its_place() -> None:
    limits = TenantLimits(Clock(), ReadModel().running, max_running=1)
    (await limits.admit("acme", "a")).undo()
    await limits.admit("acme", "b")
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "c")


async def test_the_count_is_asked_again_after_a_second_and_finished_ones_free_their_place() -> None:
    clock, read_model = Clock(), ReadModel()
    limits = TenantLimits(clock, read_model.running, max_running=2)
    for execution_id in ("a", "b"):
        (await limits.admit("acme", execution_id)).started(finished=False)
    read_model.ids["acme"] = {"a", "b"}  # projected
    clock.t += 0.5
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "c")
    assert read_model.asked == 1  # still the cached count
    read_model.ids["acme"] = {"b"}  # a finished
    clock.t += 0.6
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "c")  # a was started < 2 s ago and may not be projected
    assert read_model.asked == 2
    clock.t += 1.0
    (await limits.admit("acme", "c")).started(finished=False)
    assert read_model.asked == 3
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "d")


async def test_a_start_not_yet_in_the_read_model_still_counts() -> None:
    clock, read_model = Clock(), ReadModel()
    limits = TenantLimits(clock, read_model.running, max_running=1)
    (await limits.admit("acme", "a")).started(finished=False)
    clock.t += 1.5  # the read model has not seen it yet: it is counted beside it
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "b")
    read_model.ids["acme"] = {"a"}
    clock.t += 1.5  # long past: the read model is the count, and lists it
    with pytest.raises(TenantOverLimit):
        await limits.admit("acme", "b")


async def test_concurrent_starts_share_one_query_and_never_pass_the_limit() -> None:
    clock, read_model = Clock(), ReadModel()
    limits = TenantLimits(clock, read_model.running, max_running=5)

    async def one(i: int) -> bool:
        try:
            (await limits.admit("acme", f"e{i}")).started(finished=False)
        except TenantOverLimit:
            return False
        return True

    admitted = await asyncio.gather(*(one(i) for i in range(20)))
    assert sum(admitted) == 5
    assert read_model.asked == 1


async def test_a_read_model_that_is_away_admits_rather_than_refuses() -> None:
    clock, read_model = Clock(), ReadModel()
    read_model.down = True
    limits = TenantLimits(clock, read_model.running, max_running=1)
    (await limits.admit("acme", "a")).started(finished=False)
    with pytest.raises(TenantOverLimit):  # what this process started still counts
        await limits.admit("acme", "b")


def test_limits_are_never_negative() -> None:
    with pytest.raises(ValueError):
        TenantLimits(Clock(), starts_per_s=-1)
    with pytest.raises(ValueError):
        TenantLimits(Clock(), max_running=1)  # and a running limit needs a count


# --- the settings ------------------------------------------------------------------------


def test_the_defaults_are_generous_and_zero_turns_a_limit_off() -> None:
    defaults = Settings.from_env({})
    assert (defaults.tenant_max_running, defaults.tenant_starts_per_s) == (10_000, 2000)
    assert TenantLimits(Clock(), starts_per_s=defaults.tenant_starts_per_s).burst == 4000
    off = Settings.from_env({"LOOM_TENANT_MAX_RUNNING": "0", "LOOM_TENANT_STARTS_PER_S": "0"})
    assert not TenantLimits(Clock(), starts_per_s=off.tenant_starts_per_s).enabled
    set_ = Settings.from_env(
        {
            "LOOM_TENANT_MAX_RUNNING": "2",
            "LOOM_TENANT_STARTS_PER_S": "0.5",
            "LOOM_TENANT_STARTS_BURST": "3",
        }
    )
    assert (set_.tenant_max_running, set_.tenant_starts_per_s, set_.tenant_starts_burst) == (
        2,
        0.5,
        3,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOOM_TENANT_MAX_RUNNING", "-1"),
        ("LOOM_TENANT_MAX_RUNNING", "1.5"),
        ("LOOM_TENANT_MAX_RUNNING", "many"),
        ("LOOM_TENANT_STARTS_PER_S", "-0.1"),
        ("LOOM_TENANT_STARTS_PER_S", "nan"),
        ("LOOM_TENANT_STARTS_PER_S", "inf"),
        ("LOOM_TENANT_STARTS_BURST", "0"),
    ],
)
def test_an_unusable_limit_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
