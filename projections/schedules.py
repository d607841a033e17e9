"""The schedules index: every live schedule across tenants, and the last tick it fired.

An engine starting up reads it to know every live schedule without reading every
process; engines running read what changed since (`revision`) to take up new
ones. It is a derived index: the process streams are the record, and a tick is
started only after checking its schedule against the process as stored.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from domain.triggers import ScheduleTrigger


class ScheduleRow(msgspec.Struct, frozen=True):
    tenant: str
    process_id: str
    key: str
    trigger: ScheduleTrigger
    since_version: int
    since: float  # when it became live: ticks after it fire
    last_fired: float | None  # the latest tick started (None: none yet)
    revision: int  # grows with every row written, across the index


class ScheduleIndex(Protocol):
    """Rows written at save and archive (adapters: infra/readmodel/schedule_index)."""

    def put(self, tenant: str, process_id: str, live: list[ScheduleRow]) -> None:
        """The process's live schedules are now these: a row with a new `since_version`
        replaces the old one (last_fired cleared, a new revision); rows of other keys
        are removed. The given rows' revision and last_fired are ignored."""
        ...

    def rows(self) -> list[ScheduleRow]:
        """Every live schedule."""
        ...

    def changed(self, after: int) -> list[ScheduleRow]:
        """The rows written with a revision above `after`."""
        ...

    def fired(
        self, tenant: str, process_id: str, key: str, since_version: int, tick: float
    ) -> None:
        """The tick's execution is started: last_fired advances to it (never back), on the
        row of that `since_version` only (a schedule replaced since starts afresh)."""
        ...

    def close(self) -> None: ...
