"""Every event Loom stores, as msgspec structs tagged by their type name.

Events are facts in the past tense and are never reshaped once stored: a new
field gets a default, a new shape gets a new event. `at` and `actor` come from
the command that caused the event (the engine's clock, the token's `sub`),
never from inside a decision.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    at: str
    actor: str


# --- process definitions -------------------------------------------------------------


class ProcessSaved(Event, frozen=True, kw_only=True):
    """A version of a process definition was saved (version 1 creates it)."""

    version: int
    project_id: str
    app_id: str
    definition: dict[str, Any]


class HookIssued(Event, frozen=True, kw_only=True):
    """A webhook trigger of the process got its URL's token (kept for that key ever after)."""

    key: str
    token: str


class ProcessArchived(Event, frozen=True, kw_only=True):
    """The process was archived: its triggers stop and it starts no new executions."""


class ProjectCreated(Event, frozen=True, kw_only=True):
    name: str


class AppCreated(Event, frozen=True, kw_only=True):
    app_id: str
    name: str


class ProcessFiled(Event, frozen=True, kw_only=True):
    """A process was filed under one of the project's apps."""

    app_id: str
    process_id: str
    name: str


# --- secrets -------------------------------------------------------------------------
# One stream per tenant holds its data key and its secrets, each value encrypted with
# that key (AES-256-GCM) and the key wrapped by the deployment's master key: no event
# holds a value, or a key, in the clear.


class DataKeyMade(Event, frozen=True, kw_only=True):
    """The tenant's data key, wrapped by the master key named by its fingerprint."""

    wrapped: str  # base64: nonce + AES-GCM ciphertext of the 32-byte data key
    master: str  # the master key's fingerprint


class DataKeyRewrapped(Event, frozen=True, kw_only=True):
    """The same data key, wrapped by a new master key (`loom secrets rotate-key`)."""

    wrapped: str
    master: str


class SecretSaved(Event, frozen=True, kw_only=True):
    """A secret was created (`created`) or given a new value."""

    name: str
    sealed: str  # base64: nonce + AES-GCM ciphertext of the value, bound to tenant and name
    created: bool


class SecretDeleted(Event, frozen=True, kw_only=True):
    name: str


# --- agents --------------------------------------------------------------------------


class AgentSaved(Event, frozen=True, kw_only=True):
    version: int
    name: str
    system_prompt: str
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    # The agent's own provider: its endpoint, and the name of the tenant secret with its key.
    base_url: str | None = None
    api_key_secret: str | None = None


class AgentListed(Event, frozen=True, kw_only=True):
    """An agent was added to the tenant's list of agents."""

    agent_id: str


# --- executions ----------------------------------------------------------------------


class ParentRef(msgspec.Struct, frozen=True, kw_only=True):
    """Which element of which execution started a child, and how deep the child is."""

    execution_id: str
    element: str
    attempt: int = 1
    index: int = 0  # the item's, in a foreach
    depth: int = 2  # a top-level execution is depth 1


class ExecutionStarted(Event, frozen=True, kw_only=True):
    process_id: str
    version: int
    input: Any = None
    rerun_of: str | None = None
    from_element: str | None = None
    reused: dict[str, Any] = {}
    idempotency_key: str | None = None
    request_hash: str | None = None
    timeout_s: float | None = None  # the whole execution's; it fails when this runs out
    # What started it when not a caller of the API: {"type": "webhook" | "schedule", "key", "at"?}
    trigger: dict[str, Any] | None = None
    parent: ParentRef | None = None  # set for a child of a subprocess or foreach element


class NodeExecuting(Event, frozen=True, kw_only=True):
    element: str
    attempt: int = 1
    input: Any = None  # the request as recorded: `***` where a secret goes
    wake_at: str | None = None
    # Where the request's secrets go, by name (domain.secrets.seal); never a value.
    secrets: list[Any] | None = None


class NodeCompleted(Event, frozen=True, kw_only=True):
    element: str
    output: Any = None
    port: str = "out"
    attempt: int = 1


class NodeFailed(Event, frozen=True, kw_only=True):
    element: str
    error: str
    attempt: int = 1
    retry_at: str | None = None


class NodeSkipped(Event, frozen=True, kw_only=True):
    element: str


class NodeWaiting(Event, frozen=True, kw_only=True):
    """A `signal` element is waiting for a signal of its name (until `timeout_at`, if set)."""

    element: str
    name: str | None = None  # the signal's, so a read model needs no definition
    attempt: int = 1
    timeout_at: str | None = None


class SignalReceived(Event, frozen=True, kw_only=True):
    """A person or a system sent the execution a signal; the actor is who sent it.

    Kept per name in arrival order: the oldest one no element has taken is the next
    a waiting `signal` element of that name takes.
    """

    name: str
    data: Any = None
    idempotency_key: str | None = None
    request_hash: str | None = None


class ChildEnded(Event, frozen=True, kw_only=True):
    """A child execution of a subprocess or foreach element ended (the parent's record).

    One per child, so a 10,000-item foreach writes 10,000 small events rather than
    one that holds every result.
    """

    element: str
    attempt: int = 1
    index: int = 0
    execution_id: str
    status: str  # completed, failed or cancelled
    output: Any = None
    error: str | None = None


class ExecutionCompleted(Event, frozen=True, kw_only=True):
    output: dict[str, Any] = {}


class ExecutionFailed(Event, frozen=True, kw_only=True):
    error: str
    element: str | None = None


class ExecutionCancelled(Event, frozen=True, kw_only=True):
    reason: str | None = None


class EffectDiscarded(Event, frozen=True, kw_only=True):
    """An effect answered after its execution had ended (cancelled, failed, timed out).

    The answer is kept for the audit trail (the call did happen out there) and
    changes nothing: the execution stays as it ended.
    """

    element: str
    attempt: int = 1
    output: Any = None
    error: str | None = None


ExecutionEvent = (
    ExecutionStarted
    | NodeExecuting
    | NodeCompleted
    | NodeFailed
    | NodeSkipped
    | NodeWaiting
    | SignalReceived
    | ChildEnded
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | EffectDiscarded
)
AnyEvent = (
    ProcessSaved
    | HookIssued
    | ProcessArchived
    | ProjectCreated
    | AppCreated
    | ProcessFiled
    | AgentSaved
    | AgentListed
    | DataKeyMade
    | DataKeyRewrapped
    | SecretSaved
    | SecretDeleted
    | ExecutionStarted
    | NodeExecuting
    | NodeCompleted
    | NodeFailed
    | NodeSkipped
    | NodeWaiting
    | SignalReceived
    | ChildEnded
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | EffectDiscarded
)
TERMINAL_EVENTS = (ExecutionCompleted, ExecutionFailed, ExecutionCancelled)


def event_type(event: Event) -> str:
    return type(event).__name__


def event_data(event: Event) -> dict[str, Any]:
    """The event's own fields, without the envelope (type, at, actor)."""
    data: dict[str, Any] = msgspec.to_builtins(event)
    for key in ("type", "at", "actor"):
        data.pop(key, None)
    return data


EXECUTION_EVENT_TYPES: tuple[type[Event], ...] = (
    ExecutionStarted,
    NodeExecuting,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeWaiting,
    SignalReceived,
    ChildEnded,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionCancelled,
    EffectDiscarded,
)
