"""How the tools print what they found: lines for a person, every control escaped, or JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

import msgspec

from services.tools import replay, whatif
from services.tools.printable import printable, printable_json


def progress_bar(out: TextIO) -> Callable[[int, int, int], None]:
    """A bar redrawn in place on a terminal; elsewhere a line at every tenth."""
    live = out.isatty()
    width = 30

    def show(done: int, total: int, failed: int) -> None:
        if live:
            filled = width * done // max(total, 1)
            bar = "#" * filled + "." * (width - filled)
            end = "\n" if done == total else ""
            out.write(f"\r[{bar}] {done}/{total} executions, {failed} not deterministic{end}")
            out.flush()
        elif done == total or done % max(total // 10, 1) == 0:
            say(f"replayed {done}/{total} executions, {failed} not deterministic", file=out)

    return show


def print_what_if(report: whatif.WhatIfReport) -> int:
    say(f"what-if: execution {report.execution_id} through {report.against}")
    if report.parting is None:
        say("the paths do not part: the new definition decides what history holds")
    else:
        for line in replay.describe(report.parting):
            say(line.replace("diverges at", "paths part at").replace("code:   ", "new:    "))
    sections = (
        ("would run", report.would_run),
        ("would not run", report.would_not_run),
        ("would end otherwise", report.differs),
        ("undecided (after an effect that would run)", report.undecided),
    )
    for title, items in sections:
        if items:
            say(f"{title}:")
            for item in items:
                say(f"  {reached(item)}")
    if report.stopped_at is not None:
        say(
            f"note: history stops replaying under its own definition at event "
            f"{report.stopped_at} (see `loom replay`): later facts were not fed"
        )
    say(
        f"new path: {report.status} after {report.facts_used} of {report.facts} recorded "
        "outside facts; no effect was performed"
    )
    return 0 if report.same_path else 1


def reached(item: whatif.Reached) -> str:
    text = f"{item.key:<16} {item.state:<10} (history: {item.history})"
    if item.request is not None:
        text += f" request {as_json(item.request)}"
    elif item.state == "completed":
        text += f" -> {item.port} {short(item.output)}"
    if item.note:
        text += f"  -- {item.note}"
    return text


def describe_side(side: dict[str, Any] | None) -> str:
    if side is None:
        return "(never reached)"
    text = f"{side['state']:<10} attempts {side['attempts']}  {seconds(side['duration_s'])}"
    if side["error"]:
        text += f"  error: {side['error']}"
    if side["state"] == "completed":
        text += f"  -> {side['port']} {short(side['output'])}"
    return text


def short(value: Any, width: int = 60) -> str:
    text = as_json(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


def print_json(value: Any) -> None:
    print(printable_json(msgspec.json.encode(value).decode()))


def say(text: str = "", *, file: TextIO | None = None) -> None:
    """Print a line for a person to read, every control character in it escaped."""
    print(printable(text), file=file)


def as_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()
