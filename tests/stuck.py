"""A test stuck past its bound fails, instead of hanging the whole run, and says where.

A full run hung in CI twice (the tail of its output held only pytest's own frames),
so a stuck test is stopped with SIGALRM after STUCK_S: the alarm raises in the main
thread, which for an async test sits in the event loop's select, so the loop stops,
the test fails and the run goes on. Before that, the stacks of the loop's pending
tasks and of every other thread (the project's frames only) are kept and printed
again at the very end of the run, where a truncated CI log still shows them.
A teardown stuck as long again ends the run with the same dump.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any

STUCK_S = int(os.environ.get("LOOM_TEST_STUCK_S", "240"))
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
dumps: list[str] = []


class Stuck(Exception):
    """The test ran past STUCK_S."""


def _ours(frames: list[traceback.FrameSummary]) -> list[str]:
    return [
        f"    {os.path.relpath(f.filename, _ROOT)}:{f.lineno} {f.name}: {f.line}"
        for f in frames
        if f.filename.startswith(_ROOT) and "/.venv/" not in f.filename
    ]


def dump(nodeid: str, frame: FrameType | None) -> str:
    lines = [f"STUCK {nodeid} after {STUCK_S} s"]
    loop = asyncio._get_running_loop()
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            stack = [
                traceback.FrameSummary(f.f_code.co_filename, f.f_lineno, f.f_code.co_name)
                for f in task.get_stack()
            ]
            coro = getattr(task.get_coro(), "__qualname__", "?")
            lines.append(f"  task {task.get_name()} ({coro}):")
            lines += _ours(stack) or ["    (no frame of ours)"]
    current = sys._current_frames()
    for thread in threading.enumerate():
        top = current.get(thread.ident or -1)
        if top is None:
            continue
        stack = traceback.extract_stack(frame if thread is threading.main_thread() else top)
        lines.append(f"  thread {thread.name}:")
        lines += _ours(list(stack))[-12:]
        lines += [f"    innermost {f.filename}:{f.lineno} {f.name}" for f in stack[-3:]]
    return "\n".join(lines)


def arm(item: Any, phase: str) -> None:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        text = dump(f"{item.nodeid} ({phase})", frame)
        dumps.append(text)
        capture = item.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():  # past pytest's capture, to the log
            print("\n" + text, file=sys.stderr, flush=True)
        if phase == "teardown":
            os._exit(3)  # nothing else would stop it; the dump above says where
        raise Stuck(f"stuck for {STUCK_S} s in {phase}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(STUCK_S)


def disarm() -> None:
    signal.alarm(0)


def summary(write: Any) -> None:
    for text in dumps:
        write(text + "\n")
