"""Process definitions: the value objects a user saves, their rules, and the compiled graph.

A definition is checked whole and every broken rule is reported with the key of
the element it concerns; a definition that passes compiles into a `Graph`, the
read-only shape the orchestrator walks (ports, incoming edges, compiled CEL).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.elements import ELEMENT_TYPES, ElementType
from domain.errors import DefinitionInvalid, ExpressionError, Problem
from domain.triggers import Trigger, check_triggers

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
MAX_ELEMENTS = 5000
ERROR_PORT = "error"


class Position(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    x: float = 0.0
    y: float = 0.0


class ElementDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    key: str
    type: str
    name: str | None = None
    params: dict[str, Any] = {}
    position: Position | None = None


class ConnectionDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    source: str
    target: str
    source_port: str | None = None


class ThreadDef(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    key: str
    name: str | None = None
    elements: list[ElementDef] = []
    connections: list[ConnectionDef] = []


class ProcessDefinition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    project: str
    app: str
    name: str
    threads: list[ThreadDef]
    triggers: list[Trigger] = []  # webhooks and schedules (domain/triggers.py)


class Node(msgspec.Struct, frozen=True):
    """An element as the orchestrator sees it."""

    key: str
    kind: ElementType
    params: Any
    prepared: Any
    thread: str


class Graph:
    """A validated definition compiled for running: elements, ports and edges by key."""

    def __init__(
        self,
        nodes: dict[str, Node],
        outgoing: dict[str, list[tuple[str, str]]],
        incoming: dict[str, list[tuple[str, str]]],
        triggers: list[str],
    ) -> None:
        self.nodes = nodes
        self.outgoing = outgoing  # key -> [(port, target)] in definition order
        self.incoming = incoming  # key -> [(source, port)] in definition order
        self.triggers = triggers  # one per thread, in thread order
        self.catches_errors = {
            k for k, outs in outgoing.items() if any(p == ERROR_PORT for p, _ in outs)
        }


def compile_definition(definition: ProcessDefinition) -> Graph:
    """Validate the definition against every rule and compile it; raises DefinitionInvalid."""
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    thread_of: dict[str, str] = {}
    outgoing: dict[str, list[tuple[str, str]]] = {}
    incoming: dict[str, list[tuple[str, str]]] = {}
    triggers: list[str] = []

    if not definition.threads:
        problems.append(Problem("a process needs at least one thread"))
    for field in ("project", "app", "name"):
        value = getattr(definition, field)
        if not value.strip() or len(value) > 200:
            problems.append(Problem(f"`{field}` must be 1 to 200 characters"))
    problems += check_triggers(definition.triggers)
    if sum(len(t.elements) for t in definition.threads) > MAX_ELEMENTS:
        raise DefinitionInvalid([Problem(f"a process holds at most {MAX_ELEMENTS} elements")])

    thread_keys: set[str] = set()
    for thread in definition.threads:
        if thread.key in thread_keys:
            problems.append(Problem(f"thread key {thread.key!r} repeats", thread.key))
        thread_keys.add(thread.key)
        thread_triggers = [e.key for e in thread.elements if e.type == "trigger"]
        if len(thread_triggers) != 1:
            problems.append(
                Problem(
                    f"thread {thread.key!r} has {len(thread_triggers)} triggers; "
                    "it needs exactly one",
                    thread_triggers[1] if len(thread_triggers) > 1 else thread.key,
                )
            )
        else:
            triggers.append(thread_triggers[0])
        for element in thread.elements:
            node = _compile_element(element, thread.key, nodes, problems)
            if node is not None:
                nodes[element.key] = node
            thread_of.setdefault(element.key, thread.key)
            outgoing.setdefault(element.key, [])
            incoming.setdefault(element.key, [])

    seen_edges: set[tuple[str, str, str]] = set()
    for thread in definition.threads:
        for conn in thread.connections:
            _check_connection(conn, thread.key, thread_of, nodes, seen_edges, problems)
            if conn.source in outgoing and conn.target in incoming:
                port = conn.source_port or "out"
                outgoing[conn.source].append((port, conn.target))
                incoming[conn.target].append((conn.source, port))

    if not problems:
        cycle_at = _find_cycle(outgoing)
        if cycle_at is not None:
            problems.append(Problem(f"the graph has a cycle through {cycle_at!r}", cycle_at))
    if problems:
        raise DefinitionInvalid(problems)
    return Graph(nodes, outgoing, incoming, triggers)


def _compile_element(
    element: ElementDef, thread: str, nodes: dict[str, Node], problems: list[Problem]
) -> Node | None:
    key = element.key
    if not KEY_PATTERN.match(key):
        problems.append(
            Problem(f"element key {key!r} must be 1-128 letters, digits, or _ . : -", key)
        )
        return None
    if key in nodes:
        problems.append(Problem(f"element key {key!r} repeats", key))
        return None
    kind = ELEMENT_TYPES.get(element.type)
    if kind is None:
        known = ", ".join(ELEMENT_TYPES)
        problems.append(
            Problem(f"element {key!r} has unknown type {element.type!r} ({known})", key)
        )
        return None
    try:
        params = kind.parse(element.params)
    except ValueError as exc:
        problems.append(Problem(f"element {key!r}: params do not fit `{kind.name}`: {exc}", key))
        return None
    try:
        prepared = kind.prepare(params)
    except ExpressionError as exc:
        problems.append(Problem(f"element {key!r}: {exc.detail}", key))
        return None
    return Node(key, kind, params, prepared, thread)


def _check_connection(
    conn: ConnectionDef,
    thread: str,
    thread_of: dict[str, str],
    nodes: dict[str, Node],
    seen: set[tuple[str, str, str]],
    problems: list[Problem],
) -> None:
    for end in (conn.source, conn.target):
        if end not in thread_of:
            problems.append(Problem(f"a connection names missing element {end!r}", end))
            return
        if thread_of[end] != thread:
            problems.append(
                Problem(f"a connection of thread {thread!r} names {end!r} of another thread", end)
            )
            return
    source = nodes.get(conn.source)
    target = nodes.get(conn.target)
    if source is None or target is None:
        return  # the element itself was already refused
    port = conn.source_port
    allowed = (*source.kind.ports, ERROR_PORT)
    if source.kind.name == "condition" and port not in allowed:
        problems.append(
            Problem(
                f"condition {conn.source!r}: an outgoing connection needs source_port "
                "'true' or 'false'",
                conn.source,
            )
        )
    elif port is not None and port not in allowed:
        problems.append(
            Problem(
                f"element {conn.source!r} has no port {port!r} (ports: {', '.join(allowed)})",
                conn.source,
            )
        )
    if target.kind.name == "trigger":
        problems.append(
            Problem(f"trigger {conn.target!r} cannot have incoming connections", conn.target)
        )
    edge = (conn.source, port or "out", conn.target)
    if edge in seen:
        problems.append(
            Problem(f"connection {conn.source!r} → {conn.target!r} repeats", conn.source)
        )
    seen.add(edge)


def _find_cycle(outgoing: dict[str, list[tuple[str, str]]]) -> str | None:
    """Iterative three-colour DFS; answers a key on a cycle, or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(outgoing, white)
    for root in outgoing:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        colour[root] = grey
        while stack:
            key, i = stack[-1]
            edges = outgoing[key]
            if i < len(edges):
                stack[-1] = (key, i + 1)
                target = edges[i][1]
                if colour[target] == grey:
                    return target
                if colour[target] == white:
                    colour[target] = grey
                    stack.append((target, 0))
            else:
                colour[key] = black
                stack.pop()
    return None


_definition_decoder = msgspec.json.Decoder(ProcessDefinition)


def parse_definition(data: Any) -> ProcessDefinition:
    """Typed definition from plain data; raises DefinitionInvalid naming the bad field."""
    try:
        return msgspec.convert(data, ProcessDefinition)
    except msgspec.ValidationError as exc:
        raise DefinitionInvalid([Problem(f"definition does not fit the schema: {exc}")]) from None
