"""Fairness between tenants: how many executions one tenant may have in flight and how
fast it may start them.

A use-case policy, no HTTP here: `TenantLimits.admit` either reserves room for one
start or raises `TenantOverLimit` (the API answers 429 with `Retry-After`). A
reservation is given back when the start does not happen, so a refused or failed
start changes nothing.

- Starts per second: a token bucket per tenant in this process (`starts_per_s`
  tokens a second, holding at most `burst`), on the injected clock.
- Executions in flight: the status read model's count of the tenant's running
  and pending executions, asked at most once per `ttl_s`, plus the starts this
  process admitted since that are still running. A start costs no query in the
  common case. Starts admitted less than `PROJECTION_GRACE_S` before a count was
  asked may not be in the read model yet: they are counted beside it unless the
  read model already lists them. Executions whose start transaction already
  finished them are never counted.

Both are soft limits: with several api processes each keeps its own bucket, and
the running count may lag the truth by about `ttl_s`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from domain.ports import Clock, StoreUnavailable

MAX_RUNNING_SETTING = "LOOM_TENANT_MAX_RUNNING"
STARTS_PER_S_SETTING = "LOOM_TENANT_STARTS_PER_S"
# How long the read model's count of a tenant's running executions is trusted.
COUNT_TTL_S = 1.0
# Starts admitted longer ago than this are taken to be in the read model already
# (in one process the projector saves within ~10 ms; over NATS within a second).
PROJECTION_GRACE_S = 2.0

log = structlog.get_logger("loom.limits")


class TenantOverLimit(Exception):
    """A tenant is over one of its limits; nothing was started.

    `limit` names the setting, `retry_after_s` (≥ 1) says when to try again.
    """

    def __init__(self, tenant: str, limit: str, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.tenant = tenant
        self.limit = limit
        self.detail = detail
        self.retry_after_s = max(1, retry_after_s)


class TokenBucket:
    """`rate` tokens a second, at most `capacity` held; starts full."""

    __slots__ = ("_at", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a bucket needs a rate above 0 and room for at least one token")
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._at = now

    def tokens(self, now: float) -> float:
        """The tokens held at `now` (a clock that steps back adds none)."""
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
        return self._tokens

    def has_token(self, now: float) -> bool:
        return self.tokens(now) >= 1

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        if not self.has_token(now):
            return False
        self._tokens -= 1
        return True

    def give_back(self) -> None:
        self._tokens = min(self.capacity, self._tokens + 1)

    def wait_s(self, now: float) -> float:
        """Seconds until a token is there (0 if there is one now)."""
        missing = 1 - self.tokens(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def full(self, now: float) -> bool:
        return self.tokens(now) >= self.capacity


class _Running:
    """One tenant's executions in flight, as far as this process knows."""

    __slots__ = ("asked_at", "count", "recent", "refreshing", "ttl_s")

    def __init__(self, ttl_s: float) -> None:
        self.count = 0
        self.asked_at: float | None = None
        self.ttl_s = ttl_s
        # Started by this process and not known to have finished: id → admitted at.
        self.recent: dict[str, float] = {}
        self.refreshing: asyncio.Task[None] | None = None


class Admission:
    """Room reserved for one start: report how it went with `started` or `undo`."""

    __slots__ = ("_bucket", "_done", "_execution_id", "_running")

    def __init__(
        self, bucket: TokenBucket | None, running: _Running | None, execution_id: str
    ) -> None:
        self._bucket = bucket
        self._running = running
        self._execution_id = execution_id
        self._done = False

    def started(self, *, finished: bool) -> None:
        """The start was recorded; `finished` when its first transaction also ended it."""
        if self._done:
            return
        self._done = True
        if finished:
            self._forget()

    def undo(self) -> None:
        """Nothing was started (refused, a duplicate, the store away): give the room back."""
        if self._done:
            return
        self._done = True
        if self._bucket is not None:
            self._bucket.give_back()
        self._forget()

    def _forget(self) -> None:
        running = self._running
        if running is not None and running.recent.pop(self._execution_id, None) is not None:
            running.count = max(0, running.count - 1)


_NO_LIMITS = Admission(None, None, "")


class TenantLimits:
    """Per-tenant limits on executions in flight and on starts per second (0: no limit).

    `running(tenant)` is the read model's blocking query for the ids of a tenant's
    running and pending executions; it runs on a worker thread.
    """

    def __init__(
        self,
        clock: Clock,
        running: Callable[[str], Iterable[str]] | None = None,
        *,
        max_running: int = 0,
        starts_per_s: float = 0.0,
        burst: int | None = None,
        ttl_s: float = COUNT_TTL_S,
        grace_s: float = PROJECTION_GRACE_S,
    ) -> None:
        if max_running < 0 or starts_per_s < 0:
            raise ValueError("limits are 0 (none) or more")
        if max_running and running is None:
            raise ValueError("a limit on running executions needs a way to count them")
        self._clock = clock
        self._query = running
        self.max_running = max_running
        self.starts_per_s = starts_per_s
        self.burst = max(1, burst if burst is not None else math.ceil(2 * starts_per_s))
        self._ttl_s = ttl_s
        self._grace_s = grace_s
        self._buckets: dict[str, TokenBucket] = {}
        self._running: dict[str, _Running] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.max_running or self.starts_per_s)

    async def admit(self, tenant: str, execution_id: str) -> Admission:
        """Reserve room for starting `execution_id`, or raise TenantOverLimit."""
        if not self.enabled:
            return _NO_LIMITS
        running = None
        if self.max_running:
            running = self._running.get(tenant)
            if running is None:
                running = self._running[tenant] = _Running(self._ttl_s)
            asked_at = running.asked_at
            if asked_at is None or self._clock.now() - asked_at >= running.ttl_s:
                await self._refresh(tenant, running)
        # No await from here on: what is checked is what is taken.
        now = self._clock.now()
        bucket = self._bucket(tenant, now)
        if running is not None and running.count >= self.max_running:
            raise TenantOverLimit(
                tenant,
                MAX_RUNNING_SETTING,
                f"tenant {tenant} has {running.count} executions running, the limit "
                f"({MAX_RUNNING_SETTING}={self.max_running})",
                math.ceil(self._ttl_s),
            )
        if bucket is not None and not bucket.take(now):
            raise TenantOverLimit(
                tenant,
                STARTS_PER_S_SETTING,
                f"tenant {tenant} starts executions faster than its limit of "
                f"{self.starts_per_s:g} per second, in bursts of at most {self.burst} "
                f"({STARTS_PER_S_SETTING})",
                math.ceil(bucket.wait_s(now)),
            )
        if running is not None:
            running.recent[execution_id] = now
            running.count += 1
        return Admission(bucket, running, execution_id)

    def _bucket(self, tenant: str, now: float) -> TokenBucket | None:
        if not self.starts_per_s:
            return None
        bucket = self._buckets.get(tenant)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget the tenants that are not starting
                self._buckets = {t: b for t, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[tenant] = TokenBucket(self.starts_per_s, self.burst, now)
        return bucket

    async def _refresh(self, tenant: str, running: _Running) -> None:
        # One query per tenant at a time: the others wait on it (a caller that goes
        # away does not stop it).
        if running.refreshing is None:
            running.refreshing = asyncio.create_task(self._count(tenant, running))
        await asyncio.shield(running.refreshing)

    async def _count(self, tenant: str, running: _Running) -> None:
        assert self._query is not None
        asked_at, began = self._clock.now(), time.perf_counter()
        try:
            ids: Any = await asyncio.to_thread(self._query, tenant)
        except StoreUnavailable as exc:
            # Fairness is no reason to refuse work: keep counting from what we had.
            log.warning("running executions not counted", tenant=tenant, error=str(exc))
            running.asked_at = asked_at
            return
        finally:
            running.refreshing = None
        listed = ids if isinstance(ids, set | frozenset) else set(ids)
        seen_by = asked_at - self._grace_s
        recent = running.recent
        for execution_id in [i for i, at in recent.items() if at < seen_by]:
            del recent[execution_id]
        running.count = len(listed) + sum(1 for i in recent if i not in listed)
        running.asked_at = asked_at
        # A count that is slow to ask (a tenant with a long history) is asked less often,
        # so that it never costs more than a few percent of the store's time.
        running.ttl_s = max(self._ttl_s, 20 * (time.perf_counter() - began))


class _WallClock:
    def now(self) -> float:
        return time.time()


NO_LIMITS = TenantLimits(_WallClock())
"""Limits that admit every start (where none were configured)."""
