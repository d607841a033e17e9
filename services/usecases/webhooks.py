"""A call to a webhook's URL: check it, start the process, answer as its trigger says.

No JWT: the token in the URL is the credential and names the tenant (one indexed
read, `ProcessService.hook`). A refused call starts nothing: an unknown token, a
trigger the latest version no longer has or an archived process is 404, another
method 405, a missing or wrong signature 401, too many calls in flight on one hook
429. `respond: output` waits on the execution's live feed, holding no thread and
no connection, and answers its output (200), its error (502), or that it still
runs (202).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec

from domain.ports import UnknownSecret
from domain.triggers import WebhookTrigger
from services.usecases.errors import MethodNotAllowed, NotFound, Unauthorized
from services.usecases.executions import ExecutionService
from services.usecases.processes import ProcessService
from services.usecases.secrets import SecretService
from services.usecases.tenant_limits import TenantOverLimit

SIGNATURE_HEADER = "x-loom-signature"
# Credentials of the caller: never part of the execution's input (and so of its events).
_DROPPED = frozenset({"authorization", "cookie", SIGNATURE_HEADER, "proxy-authorization"})
MAX_IN_FLIGHT_PER_HOOK = 200
_NOT_HERE = "no webhook at this URL"


class HookCall(msgspec.Struct, frozen=True, kw_only=True):
    """One request to /hooks/<token>, as the edge read it."""

    token: str
    method: str
    body: bytes
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-case
    idempotency_key: str | None = None


class HookAnswer(msgspec.Struct, frozen=True):
    status: int
    body: Any


class WebhookService:
    def __init__(
        self,
        processes: ProcessService,
        executions: ExecutionService,
        secrets: SecretService,
        max_in_flight: int = MAX_IN_FLIGHT_PER_HOOK,
    ) -> None:
        self._processes = processes
        self._executions = executions
        self._secrets = secrets
        self._max_in_flight = max_in_flight
        self._in_flight: Counter[str] = Counter()

    async def deliver(self, call: HookCall) -> HookAnswer:
        found = await self._processes.hook(call.token)
        if found is None:
            raise NotFound(_NOT_HERE)
        hook, process = found
        trigger = process.webhook(hook.key)
        if trigger is None:  # dropped by the latest version, or the process archived
            raise NotFound(_NOT_HERE)
        if call.method != trigger.method:
            raise MethodNotAllowed(f"this webhook takes {trigger.method}", trigger.method)
        if trigger.secret is not None:
            await self._check_signature(hook.tenant, trigger.secret, call)
        if self._in_flight[call.token] >= self._max_in_flight:
            raise TenantOverLimit(
                hook.tenant,
                "webhook_in_flight",
                f"this webhook has {self._max_in_flight} calls in flight; retry shortly",
                1,
            )
        self._in_flight[call.token] += 1
        try:
            return await self._start(hook.tenant, hook.process_id, trigger, call)
        finally:
            self._in_flight[call.token] -= 1
            if not self._in_flight[call.token]:
                del self._in_flight[call.token]

    async def _start(
        self, tenant: str, process_id: str, trigger: WebhookTrigger, call: HookCall
    ) -> HookAnswer:
        given = hook_input(call)
        started = await self._executions.start(
            tenant,
            f"webhook:{trigger.key}",
            process_id,
            None,
            given,
            call.idempotency_key,
            trigger={"type": "webhook", "key": trigger.key},
            # A sender's retry carries other headers (a timestamp, an attempt number).
            same_request={"body": given["body"], "query": given["query"]},
        )
        if trigger.respond == "accepted":
            return HookAnswer(202, {"execution_id": started.execution_id})
        status = await self._executions.wait(tenant, started.execution_id, trigger.timeout_s)
        if status.status == "completed":
            return HookAnswer(200, status.output)
        if status.status in ("failed", "cancelled"):
            error = status.error or status.status
            return HookAnswer(502, {"execution_id": started.execution_id, "error": error})
        return HookAnswer(202, {"execution_id": started.execution_id, "status": "running"})

    async def _check_signature(self, tenant: str, secret: str, call: HookCall) -> None:
        given = call.headers.get(SIGNATURE_HEADER, "")
        if not given.startswith("sha256="):
            raise Unauthorized(f"this webhook needs an {SIGNATURE_HEADER}: sha256=<hex> header")
        try:
            key = (await self._secrets.reveal(tenant, [secret]))[secret]
        except UnknownSecret:
            # The tenant deleted its signing secret: nothing can be verified, so nothing starts.
            raise Unauthorized("the signature does not match") from None
        expected = hmac.new(key.encode(), call.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given.removeprefix("sha256=").strip().lower()):
            raise Unauthorized("the signature does not match")


def hook_input(call: HookCall) -> dict[str, Any]:
    """The execution's input: the body (parsed when JSON, else text), query and headers."""
    body: Any = None
    if call.body:
        try:
            body = msgspec.json.decode(call.body)
        except msgspec.DecodeError:
            body = call.body.decode("utf-8", errors="replace")
    headers = {k: v for k, v in call.headers.items() if k not in _DROPPED}
    return {"body": body, "query": dict(call.query), "headers": headers}
