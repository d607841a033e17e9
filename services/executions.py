"""Execution commands and queries: start (idempotently), status, list, events, cancel."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import msgspec

from domain.errors import InvalidCommand
from domain.events import ExecutionStarted, event_data, event_type
from domain.ports import ConcurrencyError, EventStore, StoreUnavailable
from projections.status import empty_status, fold_status
from services.api.errors import Conflict, Invalid, NotFound, Unavailable
from services.catalog import DefinitionCatalog, UnknownProcess
from services.engine.engine import Engine, UnknownExecution

STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class ExecutionService:
    def __init__(
        self, store: EventStore, catalog: DefinitionCatalog, engine: Engine, statuses: Any
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._engine = engine
        self._statuses = statuses

    async def start(
        self,
        tenant: str,
        actor: str,
        process_id: str,
        version: int | None,
        input: Any,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        try:
            process = await asyncio.to_thread(self._catalog.load, tenant, process_id)
        except UnknownProcess:
            raise NotFound(f"process {process_id} not found") from None
        except StoreUnavailable as exc:
            raise Unavailable(f"the event store is unavailable: {exc}") from None
        chosen = version or process.version
        if chosen not in process.versions:
            raise NotFound(f"process {process_id} has no version {chosen}")
        request_hash = _request_hash(process_id, version, input)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise Invalid("Idempotency-Key must be 1 to 200 characters")
            execution_id = str(uuid5(NAMESPACE_URL, f"loom:{tenant}:idem:{idempotency_key}"))
        else:
            execution_id = str(uuid4())
        started = ExecutionStarted(
            at=self._engine.now(),
            actor=actor,
            process_id=process_id,
            version=chosen,
            input=input,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        try:
            execution = await self._engine.start(tenant, execution_id, started)
        except ConcurrencyError:
            return await self._same_request(tenant, execution_id, request_hash)
        except StoreUnavailable as exc:
            raise Unavailable(f"the event store is unavailable: {exc}") from None
        return {"execution_id": execution_id, "status": execution.status}

    async def _same_request(
        self, tenant: str, execution_id: str, request_hash: str
    ) -> dict[str, Any]:
        first = await asyncio.to_thread(self._store.read, tenant, UUID(execution_id), upto=1)
        existing = first[0].event if first else None
        if not isinstance(existing, ExecutionStarted) or existing.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was used with a different request body")
        status = await self.status(tenant, execution_id)
        return {"execution_id": execution_id, "status": status["status"]}

    async def status(self, tenant: str, execution_id: str) -> dict[str, Any]:
        _check_id(execution_id)
        doc = await _blocking(self._statuses.get, tenant, execution_id)
        history = None
        if doc is None:
            # Not projected yet: the store is the record, fold it here.
            history = await _blocking(self._store.read, tenant, UUID(execution_id))
            if not history or not isinstance(history[0].event, ExecutionStarted):
                raise NotFound(f"execution {execution_id} not found")
            doc = empty_status(execution_id)
            for recorded in history:
                fold_status(doc, recorded.seq, recorded.event)
        return doc

    async def list(
        self,
        tenant: str,
        process_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> dict[str, Any]:
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}")
        if not 1 <= limit <= 500:
            raise Invalid("limit must be between 1 and 500")
        after = _decode_cursor(cursor) if cursor else None
        items = await _blocking(
            lambda: self._statuses.list(
                tenant, process_id=process_id, status=status, limit=limit, cursor=after
            )
        )
        next_cursor = None
        if len(items) == limit:
            last = items[-1]
            next_cursor = _encode_cursor(last["started_at"] or "", last["execution_id"])
        return {"items": items, "next_cursor": next_cursor}

    async def events(self, tenant: str, execution_id: str) -> list[dict[str, Any]]:
        _check_id(execution_id)
        history = await _blocking(self._store.read, tenant, UUID(execution_id))
        if not history or not isinstance(history[0].event, ExecutionStarted):
            raise NotFound(f"execution {execution_id} not found")
        return [
            {
                "seq": r.seq,
                "type": event_type(r.event),
                "at": r.event.at,
                "actor": r.event.actor,
                "element": getattr(r.event, "element", None),
                "data": event_data(r.event),
            }
            for r in history
        ]

    async def cancel(self, tenant: str, actor: str, execution_id: str) -> dict[str, Any]:
        _check_id(execution_id)
        try:
            execution = await self._engine.cancel(tenant, execution_id, actor)
        except UnknownExecution:
            raise NotFound(f"execution {execution_id} not found") from None
        except InvalidCommand as exc:
            raise Conflict(exc.detail) from None
        except ConcurrencyError:
            raise Conflict("the execution moved on while cancelling; retry") from None
        except StoreUnavailable as exc:
            raise Unavailable(f"the event store is unavailable: {exc}") from None
        return {"execution_id": execution_id, "status": execution.status}


def _check_id(execution_id: str) -> None:
    try:
        UUID(execution_id)
    except ValueError:
        raise NotFound(f"execution {execution_id} not found") from None


def _request_hash(process_id: str, version: int | None, input: Any) -> str:
    body = msgspec.json.encode({"p": process_id, "v": version, "i": input}, order="sorted")
    return hashlib.sha256(body).hexdigest()


def _encode_cursor(started_at: str, execution_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at}|{execution_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        started_at, execution_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor is not one this API gave out") from None
    return started_at, execution_id


async def _blocking(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except StoreUnavailable as exc:
        raise Unavailable(f"the event store is unavailable: {exc}") from None
