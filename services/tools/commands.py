"""The tools on the command line: argument parsing, printing, exit codes.

Exit codes: 0 all good; 1 a finding (a divergence, a broken chain, two
executions that differ, a what-if whose path parts); 2 bad input or nothing
found (the message says which, on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import msgspec

from domain.events import ExecutionStarted
from domain.history import state_at as state
from domain.ports import StoreUnavailable
from infra.settings import Settings
from infra.store.naming import validate_tenant
from services.tools import archive, audit, diff, replay, whatif
from services.tools.history import STATUSES, Histories, ToolError
from services.tools.report import (
    as_json,
    describe_side,
    print_json,
    print_what_if,
    progress_bar,
    say,
    seconds,
)

COMMANDS = ("audit", "replay", "executions", "state", "diff", "export", "import")


def add_parsers(sub: Any) -> None:
    """Add the tools' subcommands to `loom`'s subparsers."""
    cmd = sub.add_parser("audit", help="an execution's timeline; --verify checks its hash chain")
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("execution_id")
    cmd.add_argument("--json", action="store_true", help="JSON lines, one per event")
    cmd.add_argument("--verify", action="store_true", help="recompute the hash chain")

    cmd = sub.add_parser(
        "replay",
        help="re-make an execution's decisions from its events; --all: every one of a tenant; "
        "--version/--definition: what another definition would have done",
    )
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("execution_id", nargs="?")
    cmd.add_argument("--all", action="store_true", help="every execution of the tenant")
    cmd.add_argument(
        "--tree", action="store_true", help="the execution and every descendant (sub-processes)"
    )
    what = cmd.add_mutually_exclusive_group()
    what.add_argument("--version", type=int, help="what-if: this version of the process")
    what.add_argument("--definition", metavar="FILE", help="what-if: a definition in a file")

    cmd = sub.add_parser("executions", help="list a tenant's executions")
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("--process", metavar="PROCESS_ID")
    cmd.add_argument("--status", choices=STATUSES)
    cmd.add_argument("--json", action="store_true", help="JSON lines")

    cmd = sub.add_parser("state", help="an execution's state after one of its events")
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("execution_id")
    cmd.add_argument("--at", type=int, metavar="SEQ", help="after this event (default: the last)")
    cmd.add_argument("--json", action="store_true")

    cmd = sub.add_parser("diff", help="two executions element by element")
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("execution_ids", nargs=2, metavar="ID")
    cmd.add_argument("--json", action="store_true")

    cmd = sub.add_parser("export", help="a tenant's events as JSON lines, in order")
    cmd.add_argument("--tenant", required=True)
    cmd.add_argument("--since", metavar="TIME", help="only events at or after this ISO 8601 time")
    cmd.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    cmd = sub.add_parser(
        "import", help="load an export into an empty store (or finish an interrupted import)"
    )
    cmd.add_argument("file", metavar="FILE")
    cmd.add_argument("--tenant", help="load into this tenant (default: the file's)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one tool command; every refusal is a message on stderr and exit 2."""
    handler = _HANDLERS[args.command]
    try:
        return handler(settings, args)
    except ToolError as exc:
        say(f"error: {exc}", file=sys.stderr)
    except FileNotFoundError as exc:
        say(f"error: {exc}", file=sys.stderr)
    except StoreUnavailable as exc:
        say(f"error: the event store is unavailable: {exc}", file=sys.stderr)
    return 2


@contextmanager
def _histories(settings: Settings, *, create: bool = False) -> Iterator[Histories]:
    from services.bootstrap import open_store

    store = open_store(settings, create=create)
    try:
        yield Histories(store)
    finally:
        store.close()


# --- audit ------------------------------------------------------------------------------


def _audit(settings: Settings, args: argparse.Namespace) -> int:
    with _histories(settings) as histories:
        rows = histories.states(args.tenant, args.execution_id)
    if args.verify:
        return _verify(args, rows)
    lines = audit.timeline(rows)
    if args.json:
        for row in lines:
            print_json(row)
        return 0
    first = lines[0]
    if first.type == "ExecutionStarted":
        data = first.data
        say(
            f"execution {args.execution_id}  process {data['process_id']} v{data['version']}  "
            f"started by {first.actor} at {first.at}"
        )
    for row in lines:
        say(
            f"{row.seq:>5}  {row.at or '?':<27} {row.actor or '?':<12} {row.type:<20} "
            f"{row.element or '-':<16} {row.summary}"
        )
    return 0


def _verify(args: argparse.Namespace, rows: list[tuple[int, bytes]]) -> int:
    report = audit.verify_chain(UUID(args.execution_id), rows)
    if args.json:
        print_json({**msgspec.to_builtins(report), "intact": report.intact})
    elif report.first_break is not None:
        found = report.first_break
        say(f"tampered: first bad event {found.seq} ({found.kind}): {found.detail}")
    elif not report.intact:
        say(
            f"unverifiable: {report.events - report.sealed} of {report.events} events were "
            "stored before the hash chain existed"
        )
    else:
        say(f"intact: {report.events} events, every hash chains; head {report.head}")
    return 0 if report.intact else 1


# --- replay and what-if -----------------------------------------------------------------


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    if args.all:
        if args.execution_id or args.version is not None or args.definition or args.tree:
            raise ToolError(
                "--all replays every execution: give no ID, --version, --definition or --tree"
            )
        return _replay_all(settings, args.tenant)
    if not args.execution_id:
        raise ToolError("give an execution ID, or --all")
    if args.tree:
        if args.version is not None or args.definition:
            raise ToolError("--tree replays what happened: give no --version or --definition")
        return _replay_tree(settings, args.tenant, args.execution_id)
    with _histories(settings) as histories:
        if args.version is not None or args.definition:
            report = whatif.what_if(
                histories,
                args.tenant,
                args.execution_id,
                version=args.version,
                definition_file=args.definition,
            )
            return print_what_if(report)
        outcome = replay.replay_one(histories, args.tenant, args.execution_id)
    if outcome.divergence is None:
        say(f"deterministic: {outcome.events} events, every decision matches history")
        return 0
    for line in replay.describe(outcome.divergence):
        say(line)
    return 1


def _replay_tree(settings: Settings, tenant: str, execution_id: str) -> int:
    with _histories(settings) as histories:
        nodes = replay.replay_tree(histories, tenant, execution_id)
    failed = 0
    for node in nodes:
        outcome = node.outcome
        indent = "  " * node.depth
        if outcome.error is not None:
            say(f"{indent}{outcome.execution_id}: cannot replay: {outcome.error}")
        elif outcome.divergence is not None:
            say(
                f"{indent}{outcome.execution_id}: diverges at event {outcome.divergence.seq}: "
                f"{outcome.divergence.reason}"
            )
        else:
            say(f"{indent}{outcome.execution_id}: deterministic, {outcome.events} events")
        failed += not outcome.deterministic
    say(f"replayed {len(nodes)} executions: {len(nodes) - failed} deterministic, {failed} not")
    return 0 if not failed else 1


def _replay_all(settings: Settings, tenant: str) -> int:
    with _histories(settings) as histories:
        report = replay.replay_tenant(histories, tenant, progress_bar(sys.stderr))
    for failure in report.failures:
        if failure.error is not None:
            say(f"{failure.execution_id}: cannot replay: {failure.error}")
        else:
            assert failure.divergence is not None
            d = failure.divergence
            say(f"{failure.execution_id}: diverges at event {d.seq}: {d.reason}")
    deterministic = report.executions - len(report.failures)
    say(
        f"replayed {report.executions} executions, {report.events} events in "
        f"{report.seconds:.2f} s ({report.events_per_s:,.0f} events/s): "
        f"{deterministic} deterministic, {len(report.failures)} not"
    )
    return 0 if not report.failures else 1


# --- executions, state, diff ------------------------------------------------------------


def _executions(settings: Settings, args: argparse.Namespace) -> int:
    with _histories(settings) as histories:
        if not histories.check_tenant(args.tenant):
            raise ToolError(f"tenant {args.tenant} has no events")
        found = [
            s
            for s in histories.executions(args.tenant)
            if (args.process is None or s.process_id == args.process)
            and (args.status is None or s.status == args.status)
        ]
    for summary in found:
        if args.json:
            print_json(summary)
        else:
            say(
                f"{summary.execution_id}  {summary.status:<9}  {summary.started_at}  "
                f"{summary.started_by:<12} process {summary.process_id} v{summary.version}"
            )
    if not args.json:
        say(f"{len(found)} executions", file=sys.stderr)
    return 0


def _state(settings: Settings, args: argparse.Namespace) -> int:
    with _histories(settings) as histories:
        history = [r.event for r in histories.events(args.tenant, args.execution_id)]
        started = history[0]
        assert isinstance(started, ExecutionStarted)  # `events` only answers executions
        graph = histories.graph(args.tenant, started)
    try:
        doc = state.state_at(args.execution_id, graph, history, args.at)
    except state.StateRefused as exc:
        raise ToolError(str(exc)) from None
    if args.json:
        print_json(doc)
        return 0
    event = doc["event"]
    say(
        f"execution {doc['execution_id']} after event {doc['at']} of {doc['events']} "
        f"({event['type']} {event['element'] or ''} at {event['at']})"
    )
    say(f"status: {doc['status']}")
    say(f"stack (next first): {' '.join(doc['stack']) or '(empty)'}")
    for key, node in doc["nodes"].items():
        detail = ""
        if node["state"] == "completed":
            detail = f"-> {node['port']} {as_json(node['output'])}"
        elif node["error"]:
            detail = f"error: {node['error']}"
        if node["wake_at"]:
            detail += f" wakes at {node['wake_at']}"
        say(f"  {key:<16} {node['state']:<10} attempts {node['attempts']}  {detail}".rstrip())
    for flight in doc["in_flight"]:
        say(f"in flight: {flight['element']} attempt {flight['attempt']}")
    if doc["output"] is not None:
        say(f"output: {as_json(doc['output'])}")
    if doc["error"]:
        say(f"error: {doc['error']}")
    return 0


def _diff(settings: Settings, args: argparse.Namespace) -> int:
    left_id, right_id = args.execution_ids
    with _histories(settings) as histories:
        left = histories.events(args.tenant, left_id)
        right = histories.events(args.tenant, right_id)
    report = diff.diff(left_id, left, right_id, right)
    if args.json:
        print_json({**msgspec.to_builtins(report), "same": report.same})
        return 0 if report.same else 1
    for side, header in (("A", report.left), ("B", report.right)):
        say(
            f"{side}: {header['execution_id']}  process {header['process_id']} "
            f"v{header['version']}  {header['status']}  {header['events']} events  "
            f"{seconds(header['duration_s'])}"
        )
    for element in report.elements:
        mark = "  " if element.same else "≠ "
        say(f"{mark}{element.key:<16} A {describe_side(element.left)}")
        say(f"  {'':<16} B {describe_side(element.right)}")
        if element.differs:
            say(f"  {'':<16}   differs in {', '.join(element.differs)}")
    found = report.first_divergence
    if found is None:
        say("same: every event decides the same")
    else:
        say(f"first divergence at event {found.seq}:")
        say(f"  A: {as_json(found.left) if found.left is not None else '(history ends)'}")
        say(f"  B: {as_json(found.right) if found.right is not None else '(history ends)'}")
    return 0 if report.same else 1


# --- export, import ---------------------------------------------------------------------


def _export(settings: Settings, args: argparse.Namespace) -> int:
    since = None if args.since is None else archive.parse_since(args.since)
    with _histories(settings) as histories:
        lines = archive.export_lines(histories, args.tenant, since=since)
        if args.output is None:
            count = archive.write_export(lines, sys.stdout)
        else:
            try:
                with open(args.output, "w", encoding="utf-8") as out:
                    count = archive.write_export(lines, out)
            except OSError as exc:
                raise ToolError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    say(f"exported {count} events of tenant {args.tenant}", file=sys.stderr)
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from services.bootstrap import (
        open_catalog_store,
        open_hook_index,
        open_inbox_store,
        open_status_store,
    )

    if args.tenant is not None:
        try:
            validate_tenant(args.tenant)
        except ValueError as exc:
            raise ToolError(str(exc)) from None
    with _histories(settings, create=True) as histories:
        store = histories.store
        report = archive.import_archive(
            store,
            args.file,
            lambda: open_status_store(settings, store),
            open_lists=lambda: open_catalog_store(settings, store),
            open_hooks=lambda: open_hook_index(settings, store),
            open_inbox=lambda: open_inbox_store(settings, store),
            tenant=args.tenant,
        )
    say(
        f"imported {report.events} events ({report.streams} streams) into tenant "
        f"{report.tenant} in {report.seconds:.2f} s; read model: {report.folded} events folded"
    )
    if report.resumed:
        say(f"resumed: {report.resumed} of them an earlier import had written already")
    if report.rehashed:
        say(
            f"note: {report.rehashed} events were stored in an older shape and hash anew",
            file=sys.stderr,
        )
    return 0


_HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "audit": _audit,
    "replay": _replay,
    "executions": _executions,
    "state": _state,
    "diff": _diff,
    "export": _export,
    "import": _import,
}
