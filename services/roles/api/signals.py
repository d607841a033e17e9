"""The REST routes of signals: send one to an execution, list what executions wait for."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from infra.auth import Identity
from projections.inbox import SignalWait
from services.roles.api.routes import _errors
from services.usecases.signals import SignalOut, SignalService


class SignalIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The signal's data, checked against the waiting element's `schema`."""

    data: Any = None


def _who(request: Request[Any, Any, Any]) -> Identity:
    user = request.user
    assert isinstance(user, Identity)
    return user


class SignalController(Controller):
    path = "/api/v1"

    @post(
        "/executions/{execution_id:str}/signals/{name:str}",
        status_code=HTTP_202_ACCEPTED,
        responses=_errors(400, 404, 409, 413, 422),
    )
    async def send_signal(
        self,
        request: Request[Any, Any, Any],
        execution_id: FromPath[str],
        name: FromPath[str],
        data: JSONBody[SignalIn],
        signals: NamedDependency[SignalService],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> SignalOut:
        who = _who(request)
        return await signals.send(
            who.tenant, who.sub, execution_id, name, data.data, idempotency_key
        )

    @get("/signals", responses=_errors(400))
    async def list_waiting(
        self,
        request: Request[Any, Any, Any],
        signals: NamedDependency[SignalService],
        process_id: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
    ) -> list[SignalWait]:
        return await signals.waiting(_who(request).tenant, process_id, limit)
