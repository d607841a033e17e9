"""Signals: a person or another system answers an execution's waiting `signal` element.

The data is checked against the element's JSON Schema (`jsonschema`) before
anything is recorded; a refused signal leaves no trace. Schemas are checked as
schemas when a process is saved, and compiled once per process version.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any
from uuid import UUID

import jsonschema
import msgspec
from jsonschema.exceptions import SchemaError

from domain.definition import Graph
from domain.errors import InvalidCommand, Problem
from domain.ports import ConcurrencyError, ExecutionState
from projections.inbox import InboxStore, SignalWait
from services.usecases.blocking import blocking
from services.usecases.errors import Conflict, Invalid, NotFound
from services.usecases.ports import ExecutionCommands, UnknownExecution


class SignalOut(msgspec.Struct, kw_only=True):
    """What a signal answers: it is recorded; `status` is the execution's right after."""

    execution_id: str
    name: str
    status: ExecutionState


def check_signal_schemas(graph: Graph) -> None:
    """Every `signal` element's `schema` is a JSON Schema (Invalid naming the element)."""
    problems = []
    for key, node in graph.nodes.items():
        schema = node.params.schema if node.kind.name == "signal" else None
        if schema is None:
            continue
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "the top"
            detail = f"element {key!r}: schema is not a JSON Schema (at {where}): {exc.message}"
            problems.append(Problem(detail, key))
    if problems:
        raise Invalid(
            problems[0].detail, key=problems[0].key, problems=msgspec.to_builtins(problems)
        )


Validators = list[tuple[str, Any]]  # (element key, compiled validator) of one name


class SignalService:
    def __init__(self, engine: ExecutionCommands, inbox: InboxStore, capacity: int = 512) -> None:
        self._engine = engine
        self._inbox = inbox
        # Compiled validators by (tenant, process, version, name): versions never change.
        self._validators: OrderedDict[tuple[str, str, int, str], Validators] = OrderedDict()
        self._capacity = capacity

    async def send(
        self,
        tenant: str,
        actor: str,
        execution_id: str,
        name: str,
        data: Any,
        idempotency_key: str | None = None,
    ) -> SignalOut:
        """Record signal `name` with `data` for the execution; the oldest waiting element
        of that name takes it, now or when one waits.

        NotFound: no such execution in the tenant. Invalid: no `signal` element of the
        execution's version has that name, or the data does not fit its schema.
        Conflict: the execution ended, or the Idempotency-Key came with another signal.
        """
        if not _is_uuid(execution_id):
            raise NotFound(f"execution {execution_id} not found")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise Invalid("Idempotency-Key must be 1 to 200 characters")
        execution = await self._engine.load(tenant, execution_id)
        if execution is None:
            raise NotFound(f"execution {execution_id} not found")
        key = (tenant, execution.process_id, execution.version, name)
        for element, validator in self._for(key, execution.graph):
            _check(element, validator, data)
        request_hash = None
        if idempotency_key is not None:
            body = msgspec.json.encode({"n": name, "d": data}, order="sorted")
            request_hash = hashlib.sha256(body).hexdigest()
        try:
            execution = await self._engine.signal(
                tenant, execution_id, name, data, actor, idempotency_key, request_hash
            )
        except UnknownExecution:
            raise NotFound(f"execution {execution_id} not found") from None
        except InvalidCommand as exc:
            raise Conflict(exc.detail) from None
        except ConcurrencyError:
            raise Conflict("the execution kept moving while signalling; retry") from None
        return SignalOut(execution_id=execution_id, name=name, status=execution.status)

    async def waiting(
        self, tenant: str, process_id: str | None = None, limit: int = 500
    ) -> list[SignalWait]:
        """What the tenant's running executions wait for, oldest wait first (the inbox
        read model; at most `limit` executions)."""
        if not 1 <= limit <= 1000:
            raise Invalid("limit must be between 1 and 1000")
        if process_id is not None and not _is_uuid(process_id):
            return []  # no process has such an id
        return await blocking(self._inbox.list, tenant, process_id, limit)

    def _for(self, key: tuple[str, str, int, str], graph: Graph) -> Validators:
        validators = self._validators.get(key)
        if validators is not None:
            self._validators.move_to_end(key)
            return validators
        name = key[3]
        nodes = [
            node
            for node in graph.nodes.values()
            if node.kind.name == "signal" and node.params.name == name
        ]
        if not nodes:
            raise Invalid(f"no signal element of this execution's version has the name {name!r}")
        validators = []
        for node in nodes:
            schema = node.params.schema
            if schema is not None:
                cls = jsonschema.validators.validator_for(schema)
                validators.append((node.key, cls(schema)))
        self._validators[key] = validators
        if len(self._validators) > self._capacity:
            self._validators.popitem(last=False)
        return validators


def _check(element: str, validator: Any, data: Any) -> None:
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    except Exception as exc:  # a $ref it cannot resolve: nothing is fetched from outside
        raise Invalid(
            f"the schema of element {element!r} cannot be applied: {exc}", key=element
        ) from None
    if error is not None:
        raise Invalid(
            f"data does not fit the schema of element {element!r} at {error.json_path}: "
            f"{error.message}",
            key=element,
            path=error.json_path,
        )


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
