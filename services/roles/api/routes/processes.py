"""Processes: save, read, list, archive; projects, element types, a schedule's ticks."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
)

from domain.elements import ELEMENT_TYPES
from projections.catalog import ProcessSummary, ProjectOut
from services.roles.api.routes.common import caller, error_answers
from services.roles.api.schemas import (
    ElementTypeOut,
    ProcessOut,
    ProcessSavedOut,
    SaveProcessIn,
    ScheduleTicksOut,
)
from services.usecases.errors import Invalid
from services.usecases.processes import ProcessService


def _definition(data: SaveProcessIn) -> dict[str, Any]:
    return {
        "project": data.project,
        "app": data.app,
        "name": data.name,
        "threads": data.threads,
        "triggers": data.triggers,
    }


class ProcessController(Controller):
    path = "/api/v1"

    @post("/processes", status_code=HTTP_201_CREATED, responses=error_answers(400, 409, 413, 422))
    async def create_process(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SaveProcessIn],
        processes: NamedDependency[ProcessService],
    ) -> ProcessSavedOut:
        who = caller(request)
        saved = await processes.save(who.tenant, who.sub, _definition(data))
        return msgspec.convert(saved, ProcessSavedOut)

    @put(
        "/processes/{process_id:str}",
        status_code=HTTP_200_OK,
        responses=error_answers(400, 404, 409, 413, 422),
    )
    async def save_version(
        self,
        request: Request[Any, Any, Any],
        process_id: FromPath[str],
        data: JSONBody[SaveProcessIn],
        processes: NamedDependency[ProcessService],
    ) -> ProcessSavedOut:
        if data.expected_version is None:
            raise Invalid("`expected_version` is required to save a new version")
        who = caller(request)
        saved = await processes.save(
            who.tenant,
            who.sub,
            _definition(data),
            process_id=process_id,
            expected_version=data.expected_version,
        )
        return msgspec.convert(saved, ProcessSavedOut)

    @delete(
        "/processes/{process_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_answers(404, 409),
    )
    async def archive_process(
        self,
        request: Request[Any, Any, Any],
        process_id: FromPath[str],
        processes: NamedDependency[ProcessService],
    ) -> None:
        """Archive: its triggers stop, new executions are refused (409); reads go on."""
        who = caller(request)
        await processes.archive(who.tenant, who.sub, process_id)

    @get("/processes", responses=error_answers())
    async def list_processes(
        self, request: Request[Any, Any, Any], processes: NamedDependency[ProcessService]
    ) -> list[ProcessSummary]:
        return await processes.list(caller(request).tenant)

    @get("/processes/{process_id:str}", responses=error_answers(400, 404))
    async def get_process(
        self,
        request: Request[Any, Any, Any],
        process_id: FromPath[str],
        processes: NamedDependency[ProcessService],
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> ProcessOut:
        document = await processes.get(caller(request).tenant, process_id, version)
        return msgspec.convert(document, ProcessOut)

    @get("/projects", responses=error_answers())
    async def list_projects(
        self, request: Request[Any, Any, Any], processes: NamedDependency[ProcessService]
    ) -> list[ProjectOut]:
        return await processes.projects(caller(request).tenant)

    @get("/schedules/next", responses=error_answers(400, 422))
    async def schedule_ticks(
        self,
        processes: NamedDependency[ProcessService],
        cron: FromQuery[str | None] = None,
        every_s: FromQuery[float | None] = None,
        timezone: FromQuery[str] = "UTC",
        count: Annotated[int, QueryParameter(ge=1, le=20)] = 5,
    ) -> ScheduleTicksOut:
        """The next `count` ticks of a schedule trigger, checked as a save would check it."""
        ticks = processes.schedule_ticks(cron, every_s, timezone, count)
        return ScheduleTicksOut(next=ticks)

    @get("/element-types", responses=error_answers())
    async def element_types(self) -> list[ElementTypeOut]:
        return [
            ElementTypeOut(
                type=kind.name,
                description=kind.description,
                params_schema=kind.params_schema(),
                ports=[*kind.ports, "error"],
                side_effects=kind.side_effects,
            )
            for kind in ELEMENT_TYPES.values()
        ]
