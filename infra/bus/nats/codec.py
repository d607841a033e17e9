"""The wire format of an event on the bus: the `Envelope` and its msgspec JSON codec.

The relay encodes, the projector's consumer and the gateway's feed decode; an envelope
carries the event's place in the store (tenant, stream, seq, position) so that a
consumer can fold it exactly as if it had read it from the store.
"""

from __future__ import annotations

from uuid import UUID

import msgspec

from domain.events import AnyEvent
from domain.ports import RecordedEvent


class Envelope(msgspec.Struct, frozen=True):
    """One committed event as it travels: where it sits in the store, and the event."""

    tenant: str
    stream_id: UUID
    seq: int
    position: int
    event: AnyEvent

    def recorded(self) -> RecordedEvent:
        return RecordedEvent(self.stream_id, self.seq, self.event, self.position)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_event(tenant: str, recorded: RecordedEvent) -> bytes:
    return _encoder.encode(
        Envelope(tenant, recorded.stream_id, recorded.seq, recorded.position, recorded.event)  # type: ignore[arg-type]
    )


def decode_event(payload: bytes) -> Envelope:
    envelope: Envelope = _decoder.decode(payload)
    return envelope
