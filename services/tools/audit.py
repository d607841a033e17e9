"""`loom audit`: an execution's timeline from the event store, and its hash chain verified.

Every stored event is sealed with a hash chained over the previous one's (see
`infra.store.codec`): `verify_chain` recomputes the chain and names the first
event that was altered, inserted or removed. A chain is evidence against edits
made beside Loom (a row changed in the database), not a signature: whoever can
recompute every later hash can rewrite history, which is why `--verify` prints
the head hash, to be kept elsewhere and compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from domain.events import (
    ChildEnded,
    EffectDiscarded,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    NodeCompleted,
    NodeExecuting,
    NodeFailed,
    NodeSkipped,
    NodeWaiting,
    SignalReceived,
    event_data,
    event_type,
)
from infra.store import codec

SUMMARY_WIDTH = 80


class TimelineRow(msgspec.Struct, kw_only=True):
    """One event of the timeline; `--json` prints these, one per line."""

    seq: int
    at: str | None
    actor: str | None
    type: str
    element: str | None
    data: dict[str, Any]
    summary: str
    hash: str | None = None


def timeline(states: Sequence[tuple[int, bytes]]) -> list[TimelineRow]:
    """The rows of a stored history; an event that cannot be decoded shows as `Unreadable`."""
    rows = []
    for seq, state in states:
        sealed = codec.unseal(state)
        try:
            event = codec.decode(state)
        except msgspec.DecodeError as exc:
            rows.append(
                TimelineRow(
                    seq=seq,
                    at=None,
                    actor=None,
                    type="Unreadable",
                    element=None,
                    data={"error": str(exc)},
                    summary=f"cannot decode: {exc}",
                    hash=sealed.hash,
                )
            )
            continue
        rows.append(
            TimelineRow(
                seq=seq,
                at=event.at,
                actor=event.actor,
                type=event_type(event),
                element=getattr(event, "element", None),
                data=event_data(event),
                summary=summarize(event),
                hash=sealed.hash,
            )
        )
    return rows


def summarize(event: Event) -> str:
    """The data of an event in one line a person reads."""
    match event:
        case ExecutionStarted():
            text = f"process {event.process_id} v{event.version} input {_json(event.input)}"
            if event.rerun_of:
                text += f" (rerun of {event.rerun_of} from {event.from_element})"
            if event.parent is not None:
                # The link first: the summary is cut at SUMMARY_WIDTH, the input may be long.
                parent = event.parent
                text = f"child of {parent.execution_id} ({parent.element}): {text}"
        case NodeExecuting(attempt=attempt, input=request, wake_at=wake_at):
            text = f"attempt {attempt}"
            if wake_at is not None:
                text += f", wakes at {wake_at}"
            elif request is not None:
                text += f" {_json(request)}"
        case NodeCompleted(port=port, output=output):
            text = f"-> {port} {_json(output)}"
        case NodeFailed(error=error, attempt=attempt, retry_at=retry_at):
            text = f"attempt {attempt}: {error}"
            if retry_at is not None:
                text += f" (retry at {retry_at})"
        case NodeSkipped():
            text = "skipped"
        case NodeWaiting(timeout_at=timeout_at):
            text = "waiting for a signal"
            if timeout_at is not None:
                text += f" until {timeout_at}"
        case SignalReceived(name=name, data=data):
            text = f"signal {name} {_json(data)}"
        case ExecutionCompleted(output=output):
            text = f"output {_json(output)}"
        case ExecutionFailed(error=error, element=element):
            text = error if element is None else f"{element}: {error}"
        case ChildEnded(execution_id=child, index=index, status=status, error=error):
            text = f"child {child} (item {index}) {status}"
            if error is not None:
                text += f": {error}"
        case ExecutionCancelled(reason=reason):
            text = reason or "cancelled"
        case EffectDiscarded(attempt=attempt, output=output, error=error):
            text = f"attempt {attempt} answered late: {error or _json(output)}"
        case _:
            text = _json(event_data(event))
    return text if len(text) <= SUMMARY_WIDTH else text[: SUMMARY_WIDTH - 3] + "..."


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


# --- the hash chain ---------------------------------------------------------------------


class ChainBreak(msgspec.Struct, frozen=True):
    """The first event the chain does not vouch for, and what most likely happened to it."""

    seq: int
    kind: str  # "altered" | "inserted" | "removed"
    detail: str


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    sealed: int  # events that carry a hash (those before the chain existed do not)
    head: str | None  # the last event's hash: keep it elsewhere to detect a cut tail
    first_break: ChainBreak | None = None

    @property
    def intact(self) -> bool:
        return self.first_break is None and self.sealed == self.events


def verify_chain(stream_id: UUID, rows: Sequence[tuple[int, bytes]]) -> ChainReport:
    """Recompute a stream's chain from its stored states, in seq order.

    A gap in the seqs is an event removed; an event whose hash does not match is
    altered, unless its successor chains straight over its predecessor (then it
    was inserted) or its own link points two back (then the one before it was
    inserted with a recomputed hash). Events stored before the chain existed
    (no hash) are accepted only as a prefix of the stream.
    """
    parts = [codec.unseal(state) for _, state in rows]
    previous = codec.genesis(stream_id)
    hashes: list[str] = []  # hashes[i]: what event i+1 chains over
    sealed = 0

    def report(first_break: ChainBreak | None = None) -> ChainReport:
        head = parts[-1].hash if parts else None
        return ChainReport(events=len(rows), sealed=sealed, head=head, first_break=first_break)

    for index, ((seq, _), part) in enumerate(zip(rows, parts, strict=True)):
        expected = index + 1
        if seq != expected:
            missing = str(expected) if seq == expected + 1 else f"{expected} to {seq - 1}"
            return report(
                ChainBreak(expected, "removed", f"event {missing} is missing from the store")
            )
        hashes.append(previous)
        if part.hash is None:
            if sealed == 0:
                continue  # stored before the chain existed
            return report(_unsealed(seq, index, parts, previous))
        if codec.chain_hash(previous, part.body) != part.hash:
            return report(_diagnose(seq, index, parts, hashes))
        try:
            codec.decode(part.body)
        except msgspec.DecodeError as exc:  # the hash was recomputed over a broken event
            return report(ChainBreak(seq, "altered", f"event {seq} is not a valid event: {exc}"))
        previous = part.hash
        sealed += 1
    return report()


def _unsealed(seq: int, index: int, parts: list[codec.Unsealed], previous: str) -> ChainBreak:
    if _chains_over(parts, index + 1, previous):
        return ChainBreak(seq, "inserted", f"event {seq} carries no hash and was inserted")
    return ChainBreak(seq, "altered", f"event {seq} carries no hash: it was rewritten")


def _diagnose(seq: int, index: int, parts: list[codec.Unsealed], hashes: list[str]) -> ChainBreak:
    previous = hashes[index]
    if _chains_over(parts, index + 1, previous):
        return ChainBreak(
            seq, "inserted", f"event {seq} was inserted: event {seq + 1} chains over {seq - 1}"
        )
    link = parts[index].prev
    if link == previous[:8]:
        return ChainBreak(seq, "altered", f"event {seq} was altered: it no longer matches its hash")
    if index >= 1 and link == hashes[index - 1][:8]:
        return ChainBreak(
            seq - 1,
            "inserted",
            f"event {seq - 1} was inserted (with a hash of its own): event {seq} chains over "
            f"event {seq - 2}",
        )
    return ChainBreak(
        seq,
        "removed",
        f"event {seq} does not chain over event {seq - 1}: an event between them was removed "
        f"(and the later ones renumbered), or event {seq} was rewritten",
    )


def _chains_over(parts: list[codec.Unsealed], index: int, previous: str) -> bool:
    if index >= len(parts):
        return False
    part = parts[index]
    return part.hash is not None and codec.chain_hash(previous, part.body) == part.hash
