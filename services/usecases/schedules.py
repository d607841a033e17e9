"""A schedule's tick: check the schedule is still live, start its one execution, note it.

The engines decide when a tick is due (services/roles/engine/schedules.py); this
decides whether it still starts anything. A tick starts the latest version with
input = the schedule's `input` + `scheduled_at`, actor `schedule:<key>`, under
an id derived from (tenant, process, key, tick): two engines firing one tick, or
one firing it again after a crash, start it once.
"""

from __future__ import annotations

import structlog

from domain.schedules import live_schedules, tick_execution_id, tick_input, tick_trigger
from domain.triggers import ScheduleTrigger
from projections.schedules import ScheduleIndex, ScheduleRow
from services.usecases.blocking import blocking
from services.usecases.catalog import DefinitionCatalog, UnknownProcess
from services.usecases.errors import Conflict
from services.usecases.executions import ExecutionService
from services.usecases.tenant_limits import TenantOverLimit

log = structlog.get_logger("loom.schedules")


class ScheduleService:
    def __init__(
        self, index: ScheduleIndex, catalog: DefinitionCatalog, executions: ExecutionService
    ) -> None:
        self._index = index
        self._catalog = catalog
        self._executions = executions

    async def rows(self) -> list[ScheduleRow]:
        """Every live schedule, across tenants (an engine starting up)."""
        return await blocking(self._index.rows)

    async def changed(self, after: int) -> list[ScheduleRow]:
        """Schedules written since revision `after` (new, or changed by a save)."""
        return await blocking(self._index.changed, after)

    async def fire(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> ScheduleTrigger | None:
        """Start the tick's execution if the schedule is live as it was when the tick was
        decided (same `since_version`); the schedule, or None once it stopped (dropped,
        changed, re-added, archived: the tick starts nothing and no later tick follows)."""
        try:
            process = await self._catalog.latest(tenant, process_id, refresh=True)
        except UnknownProcess:
            return None
        live = live_schedules(process).get(key)
        if live is None or live.since_version != since_version:
            return None
        trigger = live.trigger
        try:
            await self._executions.start(
                tenant,
                f"schedule:{key}",
                process_id,
                None,
                tick_input(trigger, tick),
                trigger=tick_trigger(trigger, tick),
                execution_id=tick_execution_id(tenant, process_id, key, tick),
            )
        except Conflict as exc:  # started already (another engine), or archived meanwhile
            log.info("tick not started", process_id=process_id, key=key, why=exc.detail)
        except TenantOverLimit as exc:
            log.warning("tick skipped: tenant over its limit", process_id=process_id, why=str(exc))
        await blocking(self._index.fired, tenant, process_id, key, since_version, tick)
        return trigger
