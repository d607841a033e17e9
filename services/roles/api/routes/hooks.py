"""/hooks/<token>: a webhook call from a sender out there, without a JWT."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.params import FromPath

from services.usecases.webhooks import HookCall, WebhookService

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
