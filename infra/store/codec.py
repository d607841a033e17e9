"""Events to stored records and back, with msgspec JSON (the replay hot path)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from uuid import UUID

import msgspec
from eventsourcing.persistence import Notification, StoredEvent

from domain.events import AnyEvent, Event
from domain.ports import Append, RecordedEvent

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode(event: Event) -> tuple[str, bytes]:
    """The event's topic (its type name) and its JSON, type tag included."""
    return type(event).__name__, _encoder.encode(event)


def decode(state: bytes) -> Event:
    event: Event = _decoder.decode(state)
    return event


def decode_many(states: Sequence[bytes]) -> list[Event]:
    # Measured: faster than joining the states into one JSON array and
    # decoding that with a list decoder (the join copies every byte).
    return list(map(_decoder.decode, states))


class StoredState(NamedTuple):
    """An event as stored, undecoded: its tenant position, stream, seq and sealed JSON."""

    position: int
    stream_id: UUID
    seq: int
    state: bytes


# --- the hash chain ---------------------------------------------------------------------
#
# Every stored state is sealed: the event's msgspec JSON (its canonical encoding,
# fields in declaration order) with two members added before the closing brace,
# `"hash"`, sha256 hex of the previous event's hash followed by that JSON, and
# `"prev"`, the first 8 hex digits of the previous hash (a hint that tells an
# inserted or removed event from an altered one). The first event of a stream
# chains over the stream id. Decoding ignores unknown members, so a sealed state
# decodes to exactly the event appended; no event type may declare a field named
# `hash` or `prev`.

SEAL_LEN = 93  # ,"hash":"<64 hex>","prev":"<8 hex>"}
_SEAL = re.compile(rb',"hash":"([0-9a-f]{64})","prev":"([0-9a-f]{8})"\}\Z')


class Unsealed(NamedTuple):
    """A stored state taken apart: the event's JSON as hashed, its hash, the hint."""

    body: bytes
    hash: str | None  # None: stored before the chain, or stripped
    prev: str | None


def genesis(stream_id: UUID) -> str:
    """What the first event of a stream chains over."""
    return stream_id.hex


def chain_hash(previous: str, body: bytes) -> str:
    return hashlib.sha256(previous.encode() + body).hexdigest()


def seal(body: bytes, previous: str) -> tuple[bytes, str]:
    """The state to store for an event encoded as `body`, and its hash."""
    digest = chain_hash(previous, body)
    state = b'%s,"hash":"%s","prev":"%s"}' % (body[:-1], digest.encode(), previous[:8].encode())
    return state, digest


def unseal(state: bytes) -> Unsealed:
    match = _SEAL.search(state, max(0, len(state) - SEAL_LEN))
    if match is None:
        return Unsealed(state, None, None)
    return Unsealed(state[: match.start()] + b"}", match[1].decode(), match[2].decode())


def chain_over(stream_id: UUID, head_tail: bytes) -> str:
    """The hash a new event chains over, from the last SEAL_LEN bytes of the stream's head.

    A head stored before the chain existed carries no hash: the chain then starts
    at the stream id, as it does for a new stream.
    """
    found = unseal(head_tail).hash
    return genesis(stream_id) if found is None else found


# --- appends ----------------------------------------------------------------------------


def chain_heads(appends: Sequence[Append]) -> list[tuple[UUID, int]]:
    """The (stream, after) rows that must exist for the appends, whose hashes they chain over.

    The primary key (stream, seq) refuses a stale `after`; these heads must exist
    so that an `after` beyond the stream's end cannot leave a gap. A stream
    appended twice in one batch needs no head for its second part when the
    first part ends at its `after`.
    """
    heads: dict[tuple[UUID, int], None] = {}
    written: set[tuple[UUID, int]] = set()
    for append in appends:
        if append.after < 0:
            raise ValueError(f"after must be >= 0, got {append.after}")
        if not append.events:
            continue
        if append.after > 0 and (append.stream_id, append.after) not in written:
            heads[(append.stream_id, append.after)] = None
        written.add((append.stream_id, append.after + len(append.events)))
    return list(heads)


def encode_appends(
    appends: Sequence[Append], heads: Mapping[tuple[UUID, int], str]
) -> list[StoredEvent]:
    """Number each Append's events after+1, after+2, … and seal them in a chain, in order.

    `heads` maps every row of `chain_heads(appends)` to the hash it chains over.
    """
    events: list[StoredEvent] = []
    chained = dict(heads)
    for append in appends:
        if not append.events:
            continue
        stream_id = append.stream_id
        seq = append.after
        previous = genesis(stream_id) if seq == 0 else chained[(stream_id, seq)]
        for event in append.events:
            seq += 1
            topic, body = encode(event)
            state, previous = seal(body, previous)
            events.append(StoredEvent(stream_id, seq, topic, state))
        chained[(stream_id, seq)] = previous
    return events


def as_uuid(originator_id: UUID | str) -> UUID:
    return originator_id if isinstance(originator_id, UUID) else UUID(originator_id)


def recorded_events(notifications: Sequence[Notification]) -> list[RecordedEvent]:
    """The library's notifications as our recorded events, decoded, positions kept."""
    events = decode_many([n.state for n in notifications])
    return [
        RecordedEvent(as_uuid(n.originator_id), n.originator_version, event, n.id)
        for n, event in zip(notifications, events, strict=True)
    ]


def stored_states(notifications: Sequence[Notification]) -> list[StoredState]:
    """The library's notifications undecoded, with their positions (export, tools)."""
    return [
        StoredState(n.id, as_uuid(n.originator_id), n.originator_version, bytes(n.state))
        for n in notifications
    ]
