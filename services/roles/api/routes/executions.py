"""Executions: start (and wait), list, status, events, state, cancel, re-run."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_202_ACCEPTED,
)

from domain.ports import TERMINAL
from projections.status import ExecutionStatus
from services.roles.api.routes.common import caller, error_answers
from services.roles.api.schemas import (
    RerunIn,
    StartExecutionIn,
)
from services.usecases.executions import (
    EventOut,
    ExecutionOut,
    ExecutionPage,
    ExecutionService,
    RerunOut,
    StateOut,
)


class ExecutionController(Controller):
    path = "/api/v1/executions"

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        responses={
            200: ResponseSpec(
                data_container=ExecutionStatus,
                description="With `?wait=S`: the execution ended within S seconds",
                generate_examples=False,
            ),
            **error_answers(400, 404, 409, 413, 422, 429),
        },
    )
    async def start_execution(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[StartExecutionIn],
        executions: NamedDependency[ExecutionService],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
        wait: Annotated[float, QueryParameter(gt=0, le=60)] | None = None,
    ) -> Response[ExecutionOut]:  # or, with ?wait=, a 200 with the ExecutionStatus
        """With `?wait=S`: 200 and the status once it ends within S seconds, else 202."""
        if wait is not None and not 0 < wait <= 60:
            # Checked here: Litestar documents the bounds of an optional number but does
            # not enforce them.
            raise ValidationException("wait: must be above 0 and at most 60 (seconds)")
        who = caller(request)
        started = await executions.start(
            who.tenant,
            who.sub,
            data.process_id,
            data.version,
            data.input,
            idempotency_key,
            data.timeout_s,
        )
        if wait is not None:
            status = await executions.wait(who.tenant, started.execution_id, wait)
            if status.status in TERMINAL:
                return Response(status, status_code=HTTP_200_OK)  # type: ignore[arg-type]
        return Response(started, status_code=HTTP_202_ACCEPTED)

    @get("/", responses=error_answers(400, 422))
    async def list_executions(
        self,
        request: Request[Any, Any, Any],
        executions: NamedDependency[ExecutionService],
        process_id: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> ExecutionPage:
        return await executions.list(caller(request).tenant, process_id, status, limit, cursor)

    @get("/{execution_id:str}/status", responses=error_answers(404))
    async def execution_status(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> ExecutionStatus:
        return await executions.status(caller(request).tenant, execution_id)

    @get("/{execution_id:str}/events", responses=error_answers(404))
    async def execution_events(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> list[EventOut]:
        return await executions.events(caller(request).tenant, execution_id)

    @get("/{execution_id:str}/state", responses=error_answers(400, 404, 422))
    async def execution_state(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
        at: FromQuery[int | None] = None,
    ) -> StateOut:
        return await executions.state(caller(request).tenant, execution_id, at)

    @post("/{execution_id:str}/cancel", status_code=HTTP_200_OK, responses=error_answers(404, 409))
    async def cancel_execution(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> ExecutionOut:
        who = caller(request)
        return await executions.cancel(who.tenant, who.sub, execution_id)

    @post(
        "/{execution_id:str}/rerun",
        status_code=HTTP_202_ACCEPTED,
        responses=error_answers(400, 404, 409, 413, 422, 429),
    )
    async def rerun_execution(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        data: JSONBody[RerunIn],
        executions: NamedDependency[ExecutionService],
    ) -> RerunOut:
        who = caller(request)
        return await executions.rerun(
            who.tenant, who.sub, execution_id, data.from_, data.version, data.input, data.timeout_s
        )
