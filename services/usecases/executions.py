"""Execution commands and queries: start (idempotently), rerun, status, list, events, cancel."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from domain.errors import InvalidCommand
from domain.events import TERMINAL_EVENTS, ExecutionStarted, event_data, event_type
from domain.execution import Execution
from domain.history.rerun import RerunRefused, plan_rerun
from domain.history.state_at import StateRefused, state_at
from domain.ports import (
    EXECUTION_STATES,
    TERMINAL,
    ConcurrencyError,
    EventFeed,
    EventStore,
    RecordedEvent,
)
from projections.status import (
    ExecutionStatus,
    StatusQuery,
    StatusStore,
    empty_status,
    fold_status,
)
from services.usecases.blocking import blocking
from services.usecases.catalog import DefinitionCatalog, UnknownProcess
from services.usecases.errors import Conflict, Invalid, NotFound, Unavailable
from services.usecases.execution_answers import (
    EventOut,
    ExecutionOut,
    ExecutionPage,
    RerunOut,
    StateOut,
)
from services.usecases.ids import new_id
from services.usecases.ports import ExecutionCommands, UnknownExecution
from services.usecases.read_positions import ReadModelCaughtUp
from services.usecases.tenant_limits import NO_LIMITS, TenantLimits, TenantOverLimit

MAX_TIMEOUT_S = 366 * 24 * 3600
# How long a list waits for the read model to reach what the store held when asked.
LIST_WAIT_S = 5.0


# A projector's view of what it has folded but maybe not saved: (tenant, id) → doc or None.
LiveStatus = Callable[[str, str], Awaitable[ExecutionStatus | None]]


__all__ = [  # the answers are imported from here by the edges, as before
    "EventOut",
    "ExecutionOut",
    "ExecutionPage",
    "ExecutionService",
    "RerunOut",
    "StateOut",
]


class ExecutionService:
    def __init__(
        self,
        store: EventStore,
        catalog: DefinitionCatalog,
        engine: ExecutionCommands,
        statuses: StatusStore,
        live: LiveStatus | None = None,
        limits: TenantLimits | None = None,
        feed: EventFeed | None = None,
        caught_up: ReadModelCaughtUp | None = None,
    ) -> None:
        """`feed`: the live events, which a start-and-wait watches instead of polling;
        `caught_up`: waits until the read model a list reads has what a status showed."""
        self._feed = feed
        self._caught_up = caught_up
        self._store = store
        self._catalog = catalog
        self._engine = engine
        self._statuses = statuses
        self._live = live
        self._limits = limits or NO_LIMITS  # the composition root passes the settings'

    async def start(
        self,
        tenant: str,
        actor: str,
        process_id: str,
        version: int | None,
        input: Any,
        idempotency_key: str | None = None,
        timeout_s: float | None = None,
        trigger: dict[str, Any] | None = None,
        same_request: Any = msgspec.UNSET,
        execution_id: str | None = None,
    ) -> ExecutionOut:
        """Start an execution; `trigger` says what started it when not a caller of the API.

        With an `idempotency_key`, a retry is the same request when `same_request`
        (default: the input) is: a webhook's retried delivery differs in headers.
        `execution_id` (derived by the caller, as a schedule's tick does) starts at most
        one execution under it: a second start is answered like an idempotent retry.
        """
        _check_timeout(timeout_s)
        try:
            process = await self._catalog.latest(tenant, process_id)
            if version is not None and version not in process.versions:
                process = await self._catalog.latest(tenant, process_id, refresh=True)
        except UnknownProcess:
            raise NotFound(f"process {process_id} not found") from None
        if process.archived is not None:
            raise Conflict(f"process {process_id} is archived: it starts no new executions")
        chosen = process.version if version is None else version
        if chosen not in process.versions:
            raise NotFound(f"process {process_id} has no version {chosen}")
        identity = input if same_request is msgspec.UNSET else same_request
        request_hash = _request_hash(process_id, version, identity, timeout_s)
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                raise Invalid("Idempotency-Key must be 1 to 200 characters")
            execution_id = str(uuid5(NAMESPACE_URL, f"loom:{tenant}:idem:{idempotency_key}"))
        elif execution_id is None:
            execution_id = new_id()
        started = ExecutionStarted(
            at=self._engine.now(),
            actor=actor,
            process_id=process_id,
            version=chosen,
            input=input,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            timeout_s=timeout_s,
            trigger=trigger,
        )
        try:
            admission = await self._limits.admit(tenant, execution_id)
        except TenantOverLimit:
            # A retry of a start that already happened is answered as before, not counted.
            if idempotency_key is not None and await self._exists(tenant, execution_id):
                return await self._same_request(tenant, execution_id, request_hash)
            raise
        try:
            execution = await self._engine.start(tenant, execution_id, started)
        except ConcurrencyError:
            admission.undo()
            return await self._same_request(tenant, execution_id, request_hash)
        except BaseException:
            admission.undo()
            raise
        admission.started(finished=execution.finished)
        return ExecutionOut(execution_id=execution_id, status=execution.status)

    async def rerun(
        self,
        tenant: str,
        actor: str,
        execution_id: str,
        from_key: str,
        version: int | None = None,
        input: Any = msgspec.UNSET,
        timeout_s: float | None = None,
    ) -> RerunOut:
        """Start a new execution that reuses the recorded outputs of everything upstream
        of `from_key` in execution `execution_id` and runs live from `from_key`.

        `version` defaults to the earlier execution's, `input` (when given) replaces its
        input. Refuses (422) an unknown element, or a version lacking elements whose
        outputs would be reused.
        """
        _check_id(execution_id)
        _check_timeout(timeout_s)
        history = await self._history(tenant, execution_id)
        first = history[0].event
        try:
            process = await asyncio.to_thread(self._catalog.load, tenant, first.process_id)
        except UnknownProcess:
            raise NotFound(f"process {first.process_id} not found") from None
        chosen = first.version if version is None else version
        if chosen not in process.versions:
            raise NotFound(f"process {first.process_id} has no version {chosen}")
        original = Execution.rebuild(
            execution_id,
            self._catalog.graph_of(tenant, process, first.version),
            [r.event for r in history],
        )
        fresh_input = input is not msgspec.UNSET
        try:
            reused = plan_rerun(
                original, self._catalog.graph_of(tenant, process, chosen), from_key, fresh_input
            )
        except RerunRefused as exc:
            raise Invalid(exc.detail, key=exc.key, keys=exc.keys) from None
        started = ExecutionStarted(
            at=self._engine.now(),
            actor=actor,
            process_id=first.process_id,
            version=chosen,
            input=input if fresh_input else first.input,
            rerun_of=execution_id,
            from_element=from_key,
            reused=reused,
            timeout_s=timeout_s,
        )
        rerun_id = new_id()
        admission = await self._limits.admit(tenant, rerun_id)
        try:
            execution = await self._engine.start(tenant, rerun_id, started)
        except BaseException:
            admission.undo()
            raise
        admission.started(finished=execution.finished)
        return RerunOut(
            execution_id=rerun_id, status=execution.status, rerun_of=execution_id, from_=from_key
        )

    async def _exists(self, tenant: str, execution_id: str) -> bool:
        first = await blocking(lambda: self._store.read(tenant, UUID(execution_id), upto=1))
        return bool(first)

    async def _same_request(
        self, tenant: str, execution_id: str, request_hash: str
    ) -> ExecutionOut:
        first = await blocking(lambda: self._store.read(tenant, UUID(execution_id), upto=1))
        existing = first[0].event if first else None
        if not isinstance(existing, ExecutionStarted) or existing.request_hash != request_hash:
            raise Conflict("this Idempotency-Key was used with a different request body")
        status = await self.status(tenant, execution_id)
        return ExecutionOut(execution_id=execution_id, status=status.status)

    async def wait(self, tenant: str, execution_id: str, timeout_s: float) -> ExecutionStatus:
        """The status once the execution has ended, or as it stands when `timeout_s` ran out.

        Holds no thread and no connection while it waits: it watches the live feed for
        the execution's end (with a read a second as a floor, should the feed miss it).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        ended = asyncio.Event()

        def on_events(_: str, events: Sequence[RecordedEvent]) -> None:
            if any(isinstance(r.event, TERMINAL_EVENTS) for r in events):
                ended.set()

        stop = None
        if self._feed is not None:
            stop = await self._feed.watch(tenant, UUID(execution_id), on_events)
        try:
            while True:
                doc = await self.status(tenant, execution_id)
                if doc.status in TERMINAL:
                    return doc
                if ended.is_set():
                    # The end is committed; a read model apart may not have it yet.
                    return await self._folded(tenant, execution_id)
                left = deadline - loop.time()
                if left <= 0:
                    return doc
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), min(1.0, left))
        finally:
            if stop is not None:
                await stop()

    async def _folded(self, tenant: str, execution_id: str) -> ExecutionStatus:
        doc = empty_status(execution_id)
        for recorded in await self._history(tenant, execution_id):
            fold_status(doc, recorded.seq, recorded.event)
        return doc

    async def status(self, tenant: str, execution_id: str) -> ExecutionStatus:
        _check_id(execution_id)
        if self._live is not None:
            live = await self._live(tenant, execution_id)
            if live is not None:
                return live
        doc = await blocking(self._statuses.get, tenant, execution_id)
        if doc is None:
            # Not projected yet: the store is the record, fold it here.
            return await self._folded(tenant, execution_id)
        # The read model may trail what the events or a WebSocket already showed: fold
        # the store's tail past it (one indexed read, nothing when it is current).
        tail = await blocking(
            lambda: self._store.read(tenant, UUID(execution_id), after=doc.position)
        )
        for recorded in tail:
            fold_status(doc, recorded.seq, recorded.event)
        return doc

    async def list(
        self,
        tenant: str,
        process_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> ExecutionPage:
        if status is not None and status not in EXECUTION_STATES:
            raise Invalid(f"status must be one of {', '.join(EXECUTION_STATES)}")
        if not 1 <= limit <= 500:
            raise Invalid("limit must be between 1 and 500")
        after = _decode_cursor(cursor) if cursor else None
        if process_id is not None and not _is_uuid(process_id):
            # No process has such an id; answer as for any unknown one, without asking
            # a store that may refuse the value (PostgreSQL text cannot hold NUL).
            return ExecutionPage(items=[], next_cursor=None)
        if self._caught_up is not None and not await self._caught_up(tenant, LIST_WAIT_S):
            raise Unavailable(
                "the executions list is behind the event store (the projector is late or"
                " away); retry in a moment"
            )
        items = await blocking(
            self._statuses.list,
            tenant,
            StatusQuery(process_id=process_id, status=status, limit=limit, before=after),
        )
        next_cursor = None
        if len(items) == limit:
            last = items[-1]
            next_cursor = _encode_cursor(last.started_at or "", last.execution_id)
        return ExecutionPage(items=items, next_cursor=next_cursor)

    async def events(self, tenant: str, execution_id: str) -> list[EventOut]:
        _check_id(execution_id)
        history = await self._history(tenant, execution_id)
        return [
            EventOut(
                seq=r.seq,
                type=event_type(r.event),
                at=r.event.at,
                actor=r.event.actor,
                element=getattr(r.event, "element", None),
                data=event_data(r.event),
            )
            for r in history
        ]

    async def state(self, tenant: str, execution_id: str, at: int | None) -> StateOut:
        """Time travel: the execution as it stood after its event `at` (default: the last):
        the stack, every element's state and output, effects in flight, timers."""
        _check_id(execution_id)
        history = await self._history(tenant, execution_id)
        started = history[0].event
        try:
            graph = await self._catalog.graph(tenant, started.process_id, started.version)
        except UnknownProcess:
            raise NotFound(f"process {started.process_id} not found") from None
        try:
            state = state_at(execution_id, graph, [r.event for r in history], at)
        except StateRefused as exc:
            raise Invalid(str(exc), key="at") from None
        # The domain answers a plain document; typed here for the API's schema.
        return msgspec.convert(state, StateOut)

    async def cancel(self, tenant: str, actor: str, execution_id: str) -> ExecutionOut:
        _check_id(execution_id)
        try:
            execution = await self._engine.cancel(tenant, execution_id, actor)
        except UnknownExecution:
            raise NotFound(f"execution {execution_id} not found") from None
        except InvalidCommand as exc:
            raise Conflict(exc.detail) from None
        except ConcurrencyError:
            raise Conflict("the execution moved on while cancelling; retry") from None
        return ExecutionOut(execution_id=execution_id, status=execution.status)

    async def _history(self, tenant: str, execution_id: str) -> list[RecordedEvent]:
        """The execution's events, from its start (NotFound: none, or not an execution)."""
        history = await blocking(self._store.read, tenant, UUID(execution_id))
        if not history or not isinstance(history[0].event, ExecutionStarted):
            raise NotFound(f"execution {execution_id} not found")
        return history


def _check_id(execution_id: str) -> None:
    if not _is_uuid(execution_id):
        raise NotFound(f"execution {execution_id} not found")


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _check_timeout(timeout_s: float | None) -> None:
    if timeout_s is not None and not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise Invalid(f"timeout_s must be more than 0 and at most {MAX_TIMEOUT_S}")


def _request_hash(
    process_id: str, version: int | None, input: Any, timeout_s: float | None = None
) -> str:
    request: dict[str, Any] = {"p": process_id, "v": version, "i": input}
    if timeout_s is not None:  # only when set: keys used before it existed hash the same
        request["t"] = timeout_s
    body = msgspec.json.encode(request, order="sorted")
    return hashlib.sha256(body).hexdigest()


def _encode_cursor(started_at: str, execution_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at}|{execution_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        started_at, execution_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        raise Invalid("cursor is not one this API gave out") from None
    if "\x00" in started_at or not _is_uuid(execution_id):
        # A forged cursor: PostgreSQL would refuse the NUL with an error, not an answer.
        raise Invalid("cursor is not one this API gave out")
    return started_at, execution_id
