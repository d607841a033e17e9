"""The inbox: what a tenant's running executions wait for, a pure fold of status documents.

Each execution that reached a `signal` element keeps one row: its waits (the
elements waiting now, with their names, since when and until when) beside the
position of the document they come from, so a row only moves forward, like the
document. An execution that ended, or whose waits were all answered, keeps a row
with no waits, which no list shows.
"""

from __future__ import annotations

from typing import Protocol

import msgspec
from msgspec import UNSET

from projections.status import ExecutionStatus


class SignalWait(msgspec.Struct, kw_only=True):
    """One `signal` element waiting, as GET /signals lists it."""

    execution_id: str
    process_id: str | None
    element: str
    name: str
    waiting_since: str | None
    timeout_at: str | None


InboxRow = tuple[str, str | None, int, str | None, bytes]
"""An execution's waits as a store keeps them: execution_id, process_id, position, the
oldest waiting_since (None: it waits for nothing), and its waits encoded."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[SignalWait])


def waits_of(doc: ExecutionStatus) -> list[SignalWait]:
    """The `signal` elements of the document waiting now, oldest first."""
    if doc.status != "running":
        return []
    waits = [
        SignalWait(
            execution_id=doc.execution_id,
            process_id=doc.process_id,
            element=key,
            name=node.signal,
            waiting_since=node.started_at,
            timeout_at=None if node.timeout_at is UNSET else node.timeout_at,
        )
        for key, node in doc.nodes.items()
        if node.state == "waiting" and node.signal is not UNSET
    ]
    return sorted(waits, key=lambda w: (w.waiting_since or "", w.element))


def inbox_row(doc: ExecutionStatus) -> InboxRow | None:
    """The document's row, or None when it never reached a `signal` element."""
    if not any(node.signal is not UNSET for node in doc.nodes.values()):
        return None
    waits = waits_of(doc)
    since = waits[0].waiting_since or "" if waits else None
    return (doc.execution_id, doc.process_id, doc.position, since, _encoder.encode(waits))


def decode_waits(encoded: bytes) -> list[SignalWait]:
    return _decoder.decode(encoded)


class InboxStore(Protocol):
    """Where the inbox is kept (adapters in infra.readmodel.inbox_store). Calls block."""

    def save(self, tenant: str, rows: list[InboxRow]) -> None:
        """Upsert rows; a row only wins with a higher position."""
        ...

    def list(self, tenant: str, process_id: str | None, limit: int) -> list[SignalWait]:
        """The waits of the tenant's executions, oldest first (at most `limit` executions)."""
        ...

    def reset(self, tenant: str) -> None: ...

    def close(self) -> None: ...
