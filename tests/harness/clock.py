"""A clock the tests move, and the timestamps it gives.

Loom's timers (delays, retry waits, execution timeouts) fire when this clock
passes them, whatever the wall time: see `waits.clock_passed` to move it and
know the engine has looked at the new time.
"""

from __future__ import annotations

from domain.clock import iso, parse_iso

T0 = "2024-05-01T09:00:00.000000Z"
"""Where a `MovableClock` starts."""


class MovableClock:
    """Loom's `Clock` port, standing still at T0 until a test moves it."""

    def __init__(self) -> None:
        self.t = parse_iso(T0)

    def now(self) -> float:
        return self.t


def at(seconds: float) -> str:
    """The timestamp `seconds` after T0, as events record it."""
    return iso(parse_iso(T0) + seconds)
