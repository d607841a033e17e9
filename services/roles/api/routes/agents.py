"""The tenant's agents."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
)

from services.roles.api.routes.common import caller, error_answers
from services.usecases.agents import AgentOut, AgentService, AgentSpec


class AgentController(Controller):
    path = "/api/v1/agents"

    @post("/", status_code=HTTP_201_CREATED, responses=error_answers(400, 409, 413, 422))
    async def create_agent(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AgentSpec],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        who = caller(request)
        return await agents.save(who.tenant, who.sub, data)

    @get("/", responses=error_answers())
    async def list_agents(
        self, request: Request[Any, Any, Any], agents: NamedDependency[AgentService]
    ) -> list[AgentOut]:
        return await agents.list(caller(request).tenant)

    @get("/{agent_id:str}", responses=error_answers(404))
    async def get_agent(
        self,
        request: Request[Any, Any, Any],
        agent_id: FromPath[str],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        return await agents.get(caller(request).tenant, agent_id)

    @put(
        "/{agent_id:str}", status_code=HTTP_200_OK, responses=error_answers(400, 404, 409, 413, 422)
    )
    async def update_agent(
        self,
        request: Request[Any, Any, Any],
        agent_id: FromPath[str],
        data: JSONBody[AgentSpec],
        agents: NamedDependency[AgentService],
    ) -> AgentOut:
        who = caller(request)
        return await agents.save(who.tenant, who.sub, data, agent_id)
