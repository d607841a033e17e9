"""The REST routes of the contract: decode, call a service, encode."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_202_ACCEPTED,
    HTTP_204_NO_CONTENT,
)

from domain.clock import iso
from domain.elements import ELEMENT_TYPES
from domain.ports import TERMINAL
from domain.triggers import ScheduleTrigger, check_triggers, next_ticks
from infra.auth import Identity
from projections.catalog import ProcessSummary, ProjectOut
from projections.status import ExecutionStatus
from services.roles.api.schemas import (
    ElementTypeOut,
    ErrorOut,
    ProcessOut,
    ProcessSavedOut,
    RerunIn,
    SaveProcessIn,
    ScheduleTicksOut,
    StartExecutionIn,
)
from services.usecases.agents import AgentOut, AgentService, AgentSpec
from services.usecases.errors import Invalid
from services.usecases.executions import (
    EventOut,
    ExecutionOut,
    ExecutionPage,
    ExecutionService,
    RerunOut,
    StateOut,
)
from services.usecases.processes import ProcessService
from services.usecases.secrets import SecretIn, SecretOut, SecretService, SecretValueIn
from services.usecases.webhooks import HookCall, WebhookService

_ERRORS = {
    400: "The request is not the JSON or the parameters asked for",
    401: "The bearer token is missing, expired or not to be trusted",
    404: "Nothing of that id in the caller's tenant",
    409: "A stale `expected_version`, a reused `Idempotency-Key`, or a finished execution",
    413: "The body is over 1 MiB",
    422: "The request breaks a rule; `key` names the offending element",
    429: (
        "The tenant is over one of its limits (executions running, starts per second): "
        "`limit` names it; retry after the `Retry-After` header's seconds. Nothing started"
    ),
    503: "A backing store is unavailable; retry later",
}


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    """The error answers of a route for the OpenAPI document; every route may answer 401, 503."""
    return {
        code: ResponseSpec(
            data_container=ErrorOut, description=_ERRORS[code], generate_examples=False
        )
        for code in sorted({*codes, 401, 503})
    }


def _who(request: Request[Any, Any, Any]) -> Identity:
    user = request.user
    assert isinstance(user, Identity)
    return user


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

    @post("/processes", status_code=HTTP_201_CREATED, responses=_errors(400, 409, 413, 422))
    async def create_process(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SaveProcessIn],
        processes: NamedDependency[ProcessService],
    ) -> ProcessSavedOut:
        who = _who(request)
        saved = await processes.save(who.tenant, who.sub, _definition(data))
        return msgspec.convert(saved, ProcessSavedOut)

    @put(
        "/processes/{process_id:str}",
        status_code=HTTP_200_OK,
        responses=_errors(400, 404, 409, 413, 422),
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
        who = _who(request)
        saved = await processes.save(
            who.tenant,
            who.sub,
            _definition(data),
            process_id=process_id,
            expected_version=data.expected_version,
        )
        return msgspec.convert(saved, ProcessSavedOut)

    @delete(
        "/processes/{process_id:str}", status_code=HTTP_204_NO_CONTENT, responses=_errors(404, 409)
    )
    async def archive_process(
        self,
        request: Request[Any, Any, Any],
        process_id: FromPath[str],
        processes: NamedDependency[ProcessService],
    ) -> None:
        """Archive: its triggers stop, new executions are refused (409); reads go on."""
        who = _who(request)
        await processes.archive(who.tenant, who.sub, process_id)

    @get("/processes", responses=_errors())
    async def list_processes(
        self, request: Request[Any, Any, Any], processes: NamedDependency[ProcessService]
    ) -> list[ProcessSummary]:
        return await processes.list(_who(request).tenant)

    @get("/processes/{process_id:str}", responses=_errors(400, 404))
    async def get_process(
        self,
        request: Request[Any, Any, Any],
        process_id: FromPath[str],
        processes: NamedDependency[ProcessService],
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> ProcessOut:
        document = await processes.get(_who(request).tenant, process_id, version)
        return msgspec.convert(document, ProcessOut)

    @get("/projects", responses=_errors())
    async def list_projects(
        self, request: Request[Any, Any, Any], processes: NamedDependency[ProcessService]
    ) -> list[ProjectOut]:
        return await processes.projects(_who(request).tenant)

    @get("/schedules/next", responses=_errors(400, 422))
    async def schedule_ticks(
        self,
        cron: FromQuery[str | None] = None,
        every_s: FromQuery[float | None] = None,
        timezone: FromQuery[str] = "UTC",
        count: Annotated[int, QueryParameter(ge=1, le=20)] = 5,
    ) -> ScheduleTicksOut:
        """The next `count` ticks of a schedule trigger, checked as a save would check it."""
        trigger = ScheduleTrigger(key="preview", cron=cron, every_s=every_s, timezone=timezone)
        problems = check_triggers([trigger])
        if problems:
            raise Invalid(problems[0].detail.removeprefix("trigger 'preview': "))
        ticks = next_ticks(trigger, time.time(), count)
        return ScheduleTicksOut(next=[iso(t) for t in ticks])

    @get("/element-types", responses=_errors())
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
            **_errors(400, 404, 409, 413, 422, 429),
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
        who = _who(request)
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

    @get("/", responses=_errors(400, 422))
    async def list_executions(
        self,
        request: Request[Any, Any, Any],
        executions: NamedDependency[ExecutionService],
        process_id: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> ExecutionPage:
        return await executions.list(_who(request).tenant, process_id, status, limit, cursor)

    @get("/{execution_id:str}/status", responses=_errors(404))
    async def execution_status(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> ExecutionStatus:
        return await executions.status(_who(request).tenant, execution_id)

    @get("/{execution_id:str}/events", responses=_errors(404))
    async def execution_events(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> list[EventOut]:
        return await executions.events(_who(request).tenant, execution_id)

    @get("/{execution_id:str}/state", responses=_errors(400, 404, 422))
    async def execution_state(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
        at: FromQuery[int | None] = None,
    ) -> StateOut:
        return await executions.state(_who(request).tenant, execution_id, at)

    @post("/{execution_id:str}/cancel", status_code=HTTP_200_OK, responses=_errors(404, 409))
    async def cancel_execution(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        executions: NamedDependency[ExecutionService],
    ) -> ExecutionOut:
        who = _who(request)
        return await executions.cancel(who.tenant, who.sub, execution_id)

    @post(
        "/{execution_id:str}/rerun",
        status_code=HTTP_202_ACCEPTED,
        responses=_errors(400, 404, 409, 413, 422, 429),
    )
    async def rerun_execution(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        data: JSONBody[RerunIn],
        executions: NamedDependency[ExecutionService],
    ) -> RerunOut:
        who = _who(request)
        return await executions.rerun(
            who.tenant, who.sub, execution_id, data.from_, data.version, data.input, data.timeout_s
        )


class AgentController(Controller):
    path = "/api/v1/agents"

    @post("/", status_code=HTTP_201_CREATED, responses=_errors(400, 409, 413, 422))
    async def create_agent(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AgentSpec],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        who = _who(request)
        return await agents.save(who.tenant, who.sub, data)

    @get("/", responses=_errors())
    async def list_agents(
        self, request: Request[Any, Any, Any], agents: NamedDependency[AgentService]
    ) -> list[AgentOut]:
        return await agents.list(_who(request).tenant)

    @get("/{agent_id:str}", responses=_errors(404))
    async def get_agent(
        self,
        request: Request[Any, Any, Any],
        agent_id: FromPath[str],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        return await agents.get(_who(request).tenant, agent_id)

    @put("/{agent_id:str}", status_code=HTTP_200_OK, responses=_errors(400, 404, 409, 413, 422))
    async def update_agent(
        self,
        request: Request[Any, Any, Any],
        agent_id: FromPath[str],
        data: JSONBody[AgentSpec],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        who = _who(request)
        return await agents.save(who.tenant, who.sub, data, agent_id)


class SecretController(Controller):
    """The tenant's secrets: names and audit fields out, values only in."""

    path = "/api/v1/secrets"

    @post("/", status_code=HTTP_201_CREATED, responses=_errors(400, 409, 413, 422))
    async def create_secret(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SecretIn],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        who = _who(request)
        return await secrets.create(who.tenant, who.sub, data)

    @get("/", responses=_errors())
    async def list_secrets(
        self, request: Request[Any, Any, Any], secrets: NamedDependency[SecretService]
    ) -> list[SecretOut]:
        return await secrets.list(_who(request).tenant)

    @get("/{name:str}", responses=_errors(404))
    async def get_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        return await secrets.get(_who(request).tenant, name)

    @put("/{name:str}", status_code=HTTP_200_OK, responses=_errors(400, 404, 409, 413, 422))
    async def replace_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: JSONBody[SecretValueIn],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        who = _who(request)
        return await secrets.replace(who.tenant, who.sub, name, data)

    @delete("/{name:str}", status_code=HTTP_204_NO_CONTENT, responses=_errors(404, 409))
    async def delete_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        secrets: NamedDependency[SecretService],
    ) -> None:
        who = _who(request)
        await secrets.delete(who.tenant, who.sub, name)


_HOOK_METHODS = [
    HttpMethod.GET,
    HttpMethod.POST,
    HttpMethod.PUT,
    HttpMethod.PATCH,
    HttpMethod.DELETE,
]


@route(
    "/hooks/{token:str}",
    http_method=_HOOK_METHODS,
    exclude_from_auth=True,
    include_in_schema=False,  # called by outside senders, answered as the trigger says
)
async def webhook(
    request: Request[Any, Any, Any], token: FromPath[str], webhooks: NamedDependency[WebhookService]
) -> Response[Any]:
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = await webhooks.deliver(
        HookCall(
            token=token,
            method=request.method,
            body=await request.body(),
            query=dict(request.query_params),
            headers=headers,
            idempotency_key=headers.get("idempotency-key"),
        )
    )
    return Response(answer.body, status_code=answer.status)


ROUTES = [ProcessController, ExecutionController, AgentController, SecretController, webhook]
