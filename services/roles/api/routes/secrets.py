"""The tenant's secrets: names and audit fields out, values only in."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_204_NO_CONTENT,
)

from services.roles.api.routes.common import caller, error_answers
from services.usecases.secrets import SecretIn, SecretOut, SecretService, SecretValueIn


class SecretController(Controller):
    """The tenant's secrets: names and audit fields out, values only in."""

    path = "/api/v1/secrets"

    @post("/", status_code=HTTP_201_CREATED, responses=error_answers(400, 409, 413, 422))
    async def create_secret(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SecretIn],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        who = caller(request)
        return await secrets.create(who.tenant, who.sub, data)

    @get("/", responses=error_answers())
    async def list_secrets(
        self, request: Request[Any, Any, Any], secrets: NamedDependency[SecretService]
    ) -> list[SecretOut]:
        return await secrets.list(caller(request).tenant)

    @get("/{name:str}", responses=error_answers(404))
    async def get_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        return await secrets.get(caller(request).tenant, name)

    @put("/{name:str}", status_code=HTTP_200_OK, responses=error_answers(400, 404, 409, 413, 422))
    async def replace_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        data: JSONBody[SecretValueIn],
        secrets: NamedDependency[SecretService],
    ) -> SecretOut:
        who = caller(request)
        return await secrets.replace(who.tenant, who.sub, name, data)

    @delete("/{name:str}", status_code=HTTP_204_NO_CONTENT, responses=error_answers(404, 409))
    async def delete_secret(
        self,
        request: Request[Any, Any, Any],
        name: FromPath[str],
        secrets: NamedDependency[SecretService],
    ) -> None:
        who = caller(request)
        await secrets.delete(who.tenant, who.sub, name)
