"""The subjects and message ids Loom uses on NATS, decided here and nowhere else.

- `<prefix>.ev.<tenant>.<stream_id>`: every committed event, in the stream `<prefix>_events`
  (limits retention), `Nats-Msg-Id` = `<tenant>:<stream_id>:<seq>`;
- `<prefix>.work.<tenant>.<execution_id>`: an execution that needs an engine, in the stream
  `<prefix>_work` (work-queue retention, one durable pull consumer shared by every engine);
- `<prefix>.relay.wake`: core NATS, "this tenant has new events", from writers to the relay.

A tenant id never holds '.', '*' or '>' (`validate_tenant`), so a subject built from an
authenticated tenant can never reach another tenant's messages.
"""

from __future__ import annotations

from uuid import UUID

from domain.ports import RecordedEvent
from infra.store.naming import validate_tenant

MSG_ID = "Nats-Msg-Id"  # the header JetStream deduplicates on


def event_subject(prefix: str, tenant: str, stream_id: UUID) -> str:
    """The subject of one stream's (execution's) events."""
    return f"{prefix}.ev.{validate_tenant(tenant)}.{stream_id}"


def work_subject(prefix: str, tenant: str, execution_id: UUID) -> str:
    """The subject of an execution's work item."""
    return f"{prefix}.work.{validate_tenant(tenant)}.{execution_id}"


def wake_subject(prefix: str) -> str:
    return f"{prefix}.relay.wake"


def event_msg_id(tenant: str, recorded: RecordedEvent) -> str:
    """The event's identity, so that JetStream drops a re-publish."""
    return f"{tenant}:{recorded.stream_id}:{recorded.seq}"


def work_msg_id(tenant: str, execution_id: UUID) -> str:
    return f"{tenant}:{execution_id}:work"


def subject_tail(subject: str) -> tuple[str, UUID]:
    """(tenant, id) from `<prefix>.<kind>.<tenant>.<id>`."""
    _, _, tenant, stream = subject.rsplit(".", 3)
    return validate_tenant(tenant), UUID(stream)
