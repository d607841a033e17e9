"""`loom export` and `loom import`: a tenant's events as JSON lines, and back into a store.

One line per event, in the tenant's commit order, each carrying the event's
stored JSON exactly as hashed (`event`) with its place (`stream_id`, `seq`,
`position`) and its chain (`hash`, `prev`). So an archive is tamper-evident by
itself: `import` recomputes every stream's chain from the file before it
writes anything, and loading the same bytes into an empty store seals them with
the same hashes again. Import then folds the read model, so the status
documents come out as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import msgspec

from domain.events import Event, event_type
from domain.ports import Append, EventStore
from infra.store import codec
from infra.store.naming import validate_tenant
from projections.catalog import CatalogStore
from projections.hooks import HookIndex
from services.roles.projector.catalog import CatalogProjector
from services.roles.projector.projector import Projector
from services.tools.history import Histories, ToolError, state_reader

WRITE_BATCH = 500


class Line(msgspec.Struct, kw_only=True):
    """One exported event."""

    tenant: str
    position: int
    stream_id: str
    seq: int
    type: str
    at: str
    actor: str
    hash: str | None
    prev: str | None
    event: msgspec.Raw  # the event's JSON as stored and hashed, seal removed


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    events: int
    streams: int
    folded: int  # execution events folded into the read model
    seconds: float
    rehashed: int  # events whose stored form changed shape since export (hashed anew)
    resumed: int = 0  # events an earlier, interrupted import of this archive had written


_line_encoder = msgspec.json.Encoder()
_line_decoder = msgspec.json.Decoder(Line)


def parse_since(text: str) -> float:
    """An ISO 8601 instant or date (UTC unless it says otherwise), as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(
            f"--since must be an ISO 8601 time, like 2024-05-01T09:00:00Z: {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def export_lines(
    histories: Histories, tenant: str, *, since: float | None = None, batch: int = 2000
) -> Iterator[bytes]:
    """The tenant's events as JSON lines (no newline), in commit order, from `since` on."""
    if not histories.check_tenant(tenant):
        raise ToolError(f"tenant {tenant} has no events")
    reader = state_reader(histories.store)
    after = 0
    while True:
        rows = reader.read_all_states(tenant, after=after, limit=batch)
        if not rows:
            return
        after = rows[-1].position
        for row in rows:
            sealed = codec.unseal(row.state)
            event = _decode(sealed.body, f"event {row.seq} of stream {row.stream_id}")
            if since is not None and _instant(event.at) < since:
                continue
            yield _line_encoder.encode(
                Line(
                    tenant=tenant,
                    position=row.position,
                    stream_id=str(row.stream_id),
                    seq=row.seq,
                    type=event_type(event),
                    at=event.at,
                    actor=event.actor,
                    hash=sealed.hash,
                    prev=sealed.prev,
                    event=msgspec.Raw(sealed.body),
                )
            )


def write_export(lines: Iterable[bytes], out: TextIO) -> int:
    count = 0
    for line in lines:
        out.write(line.decode())
        out.write("\n")
        count += 1
    return count


class _Stream:
    __slots__ = ("previous", "sealed", "seq")

    def __init__(self, stream_id: UUID) -> None:
        self.seq = 0
        self.previous = codec.genesis(stream_id)
        self.sealed = False


def check_archive(path: str, tenant: str | None = None) -> tuple[str, int, int, int]:
    """Read the whole file and check it before anything is written: one tenant, every stream
    from seq 1 without a gap, every chain intact. Returns (tenant, events, streams, rehashed).
    """
    found_tenant = tenant
    streams: dict[UUID, _Stream] = {}
    events = rehashed = 0
    for number, line in _numbered(path):
        where = f"{path} line {number}"
        if tenant is None:
            if found_tenant is None:
                found_tenant = line.tenant
            elif line.tenant != found_tenant:
                raise ToolError(f"{where}: tenant {line.tenant!r} after {found_tenant!r}")
        stream_id = _uuid(line.stream_id, where)
        stream = streams.get(stream_id) or streams.setdefault(stream_id, _Stream(stream_id))
        if line.seq != stream.seq + 1:
            raise ToolError(
                f"{where}: stream {stream_id} goes from seq {stream.seq} to {line.seq}; "
                "import needs every stream whole (an export without --since)"
            )
        body = bytes(line.event)
        event = _decode(body, where)
        if line.hash is None:
            if stream.sealed:
                raise ToolError(f"{where}: event {line.seq} of {stream_id} carries no hash")
        elif codec.chain_hash(stream.previous, body) != line.hash:
            raise ToolError(
                f"{where}: event {line.seq} of {stream_id} does not match its hash: "
                "the archive was altered"
            )
        else:
            stream.previous, stream.sealed = line.hash, True
        stream.seq = line.seq
        events += 1
        rehashed += codec.encode(event)[1] != body
    if found_tenant is None:
        raise ToolError(f"{path} holds no events")
    try:
        validate_tenant(found_tenant)
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    return found_tenant, events, len(streams), rehashed


def import_archive(
    store: EventStore,
    path: str,
    open_statuses: Callable[[], Any],
    *,
    open_lists: Callable[[], CatalogStore] | None = None,
    open_hooks: Callable[[], HookIndex] | None = None,
    tenant: str | None = None,
    open_inbox: Callable[[], Any] | None = None,
) -> ImportReport:
    """Load an export into a tenant, then fold its read model.

    The tenant must hold no events, or only events of this very archive: what an
    import that stopped half-way (a lost connection, Ctrl-C) had written. Those are
    checked against the archive, hash by hash, and the import goes on after them.
    """
    began = time.perf_counter()
    target, events, streams, rehashed = check_archive(path, tenant)
    heads = _heads(store, target)
    if heads:
        _check_resumable(path, target, heads)
    runs: list[tuple[UUID, int, list[Event]]] = []  # consecutive events of one stream
    size = 0
    for _, line in _numbered(path):
        stream_id = UUID(line.stream_id)
        if line.seq <= heads.get(stream_id, (0, ""))[0]:
            continue  # written by the import this one finishes
        if not runs or runs[-1][0] != stream_id:
            runs.append((stream_id, line.seq - 1, []))
        runs[-1][2].append(codec.decode(bytes(line.event)))
        size += 1
        if size >= WRITE_BATCH:
            store.append(target, [Append(*run) for run in runs])
            runs, size = [], 0
    if runs:
        store.append(target, [Append(*run) for run in runs])
    statuses = open_statuses()
    inbox = open_inbox() if open_inbox is not None else None  # the waiting signals
    try:
        folded = Projector(store, statuses, signals=inbox).catch_up(target)
    finally:
        statuses.close()
        if inbox is not None:
            inbox.close()
    if open_lists is not None:  # the process and project lists, read from the same file
        lists = open_lists()
        hooks = open_hooks() if open_hooks is not None else None
        try:
            CatalogProjector(store, lists, hooks).catch_up(target)
        finally:
            lists.close()
            if hooks is not None:
                hooks.close()
    return ImportReport(
        tenant=target,
        events=events,
        streams=streams,
        folded=folded,
        seconds=time.perf_counter() - began,
        rehashed=rehashed,
        resumed=sum(seq for seq, _ in heads.values()),
    )


def _heads(store: EventStore, tenant: str) -> dict[UUID, tuple[int, str | None]]:
    """Each stream the tenant holds already: its last seq and that event's chain hash.

    The hash chains over every event before it, so one per stream is enough to
    tell whether the whole stored stream is what an import of the archive writes.
    """
    if tenant not in store.tenants() or store.max_position(tenant) == 0:
        return {}
    reader = state_reader(store)
    heads: dict[UUID, tuple[int, str | None]] = {}
    after = 0
    while rows := reader.read_all_states(tenant, after=after, limit=5000):
        after = rows[-1].position
        for row in rows:
            heads[row.stream_id] = (row.seq, codec.unseal(row.state).hash)
    return heads


def _check_resumable(path: str, tenant: str, heads: dict[UUID, tuple[int, str | None]]) -> None:
    """Refuse, before anything is written, unless every stored stream is a prefix of what
    importing the archive writes: the same events, sealed into the same chain."""
    refusal = (
        f"tenant {tenant} already holds events that are not this archive's: import loads "
        "into an empty store, or finishes its own import that stopped half-way"
    )
    # What an import stores: each event encoded anew and sealed in a chain from genesis.
    chains: dict[UUID, str] = {}
    unmatched = dict(heads)
    for _, line in _numbered(path):
        stream_id = UUID(line.stream_id)
        head = heads.get(stream_id)
        if head is None or line.seq > head[0]:
            continue
        body = codec.encode(codec.decode(bytes(line.event)))[1]
        chains[stream_id] = codec.chain_hash(chains.get(stream_id, codec.genesis(stream_id)), body)
        if line.seq == head[0]:
            if chains[stream_id] != head[1]:
                raise ToolError(f"{refusal} (stream {stream_id} differs by its event {line.seq})")
            del unmatched[stream_id]
    if unmatched:
        stream_id, (seq, _) = next(iter(unmatched.items()))
        raise ToolError(f"{refusal} (event {seq} of stream {stream_id} is not in it)")


def _numbered(path: str) -> Iterator[tuple[int, Line]]:
    if not Path(path).is_file():
        raise ToolError(f"cannot read {path}: no such file")
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, _line_decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise ToolError(f"{path} line {number} is not an exported event: {exc}") from None


def _decode(body: bytes, where: str) -> Event:
    try:
        return codec.decode(body)
    except msgspec.DecodeError as exc:
        raise ToolError(f"{where} cannot be decoded: {exc}") from None


def _uuid(text: str, where: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ToolError(f"{where}: stream_id {text!r} is not a UUID") from None


def _instant(at: str) -> float:
    try:
        return parse_since(at)
    except ToolError:
        return float("inf")  # an event whose time does not parse is never left out
