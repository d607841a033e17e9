"""The hash chain sealing every stored event, checked without a database: an intact chain
verifies, and the first altered, inserted or removed event is named. Pure: no I/O (the
same checks against real stores and `loom audit --verify` are in
tests/integration/test_tamper.py).
"""

from __future__ import annotations

import typing
import uuid

import msgspec

from domain.events import AnyEvent, NodeSkipped
from infra.store import codec
from services.tools.audit import verify_chain

AT = "2025-01-01T00:00:00.000000Z"


def _stream(count: int, stream_id: uuid.UUID) -> list[tuple[int, bytes]]:
    previous, rows = codec.genesis(stream_id), []
    for seq in range(1, count + 1):
        _, body = codec.encode(NodeSkipped(at=AT, actor="alice", element=f"e{seq}"))
        state, previous = codec.seal(body, previous)
        rows.append((seq, state))
    return rows


def _forged(seq: int) -> bytes:
    return codec.encode(NodeSkipped(at=AT, actor="mallory", element=f"forged{seq}"))[1]


def _renumber(rows: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    return [(seq, state) for seq, (_, state) in enumerate(rows, start=1)]


def test_an_intact_chain_verifies_and_names_its_head() -> None:
    stream_id = uuid.uuid4()
    rows = _stream(6, stream_id)

    report = verify_chain(stream_id, rows)

    assert report.intact and report.sealed == 6
    assert report.head == codec.unseal(rows[-1][1]).hash
    assert not verify_chain(uuid.uuid4(), rows).intact  # a chain belongs to its stream


def test_the_chain_names_the_first_altered_inserted_or_removed_event() -> None:
    stream_id = uuid.uuid4()
    rows = _stream(6, stream_id)
    altered = list(rows)
    altered[2] = (3, rows[2][1].replace(b'"e3"', b'"e9"'))
    unsealed_insert = _renumber([*rows[:3], (0, _forged(4)), *rows[3:]])
    resealed_insert = _renumber(
        [*rows[:3], (0, codec.seal(_forged(4), codec.unseal(rows[2][1]).hash or "")[0]), *rows[3:]]
    )
    removed = [*rows[:3], *rows[4:]]
    removed_and_renumbered = _renumber(removed)

    cases = {
        "altered": (altered, 3, "altered"),
        "inserted without a hash": (unsealed_insert, 4, "inserted"),
        "inserted with a hash of its own": (resealed_insert, 4, "inserted"),
        "removed": (removed, 4, "removed"),
        "removed, later rows renumbered": (removed_and_renumbered, 4, "removed"),
    }
    for name, (tampered, seq, kind) in cases.items():
        found = verify_chain(stream_id, tampered).first_break
        assert found is not None, name
        assert (found.seq, found.kind) == (seq, kind), (name, found)


def test_events_stored_before_the_chain_existed_are_unverifiable_not_tampered() -> None:
    stream_id = uuid.uuid4()
    legacy = [(1, _forged(1)), (2, _forged(2))]
    sealed_after = codec.seal(_forged(3), codec.genesis(stream_id))[0]

    report = verify_chain(stream_id, [*legacy, (3, sealed_after)])

    assert report.first_break is None and not report.intact
    assert (report.events, report.sealed) == (3, 1)


def test_no_event_type_may_declare_the_chains_own_fields() -> None:
    for event_type in typing.get_args(AnyEvent):
        fields = {f.name for f in msgspec.structs.fields(event_type)}
        assert not fields & {"hash", "prev"}, event_type.__name__
