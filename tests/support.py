"""Pieces the tests (and the benches) share: the contract's example and definition builders.

Kept free of the app and its stores, so unit tests can import it cheaply.
"""

from __future__ import annotations

from typing import Any

SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-for-hs512-too-0123456789"
"""The HS256 secret the API tests mint their tokens with."""

SECRETS_KEY = "bG9vbS10ZXN0cy1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="
"""A LOOM_SECRETS_KEY for tests (32 bytes, base64): every role over NATS needs one."""

Thread = tuple[list[dict[str, Any]], list[dict[str, Any]]]
"""One thread of a definition: its elements and its connections."""


def el(key: str, type_: str, **params: Any) -> dict[str, Any]:
    """An element of a definition; `params` only when there are some."""
    element: dict[str, Any] = {"key": key, "type": type_}
    if params:
        element["params"] = params
    return element


def edge(source: str, target: str, port: str | None = None) -> dict[str, Any]:
    """A connection of a definition, from `port` of `source` when given."""
    c = {"source": source, "target": target}
    if port is not None:
        c["source_port"] = port
    return c


def definition(
    *threads: Thread, project: str = "P", app: str = "A", name: str = "N"
) -> dict[str, Any]:
    """A process definition of `threads`, keyed t0, t1, …"""
    return {
        "project": project,
        "app": app,
        "name": name,
        "threads": [
            {"key": f"t{i}", "elements": elements, "connections": connections}
            for i, (elements, connections) in enumerate(threads)
        ],
    }


def contract_thread() -> Thread:
    """The one thread of the contract's example: score the input, then branch on the score."""
    return (
        [
            el("start", "trigger"),
            el("score", "transform", output={"score": "input.amount * 2"}),
            el("big", "condition", expression="input.score > 100"),
            el("yes", "end"),
            el("no", "end"),
        ],
        [
            edge("start", "score"),
            edge("score", "big"),
            edge("big", "yes", "true"),
            edge("big", "no", "false"),
        ],
    )


def contract_example(**fields: Any) -> dict[str, Any]:
    """The contract's example process, a fresh copy; `fields` replace its top-level ones."""
    elements, connections = contract_thread()
    return {
        "project": "Sales",
        "app": "Leads",
        "name": "Qualify lead",
        "threads": [
            {"key": "main", "name": "Main", "elements": elements, "connections": connections}
        ],
        **fields,
    }


def with_delay(seconds: float, name: str = "Wait") -> dict[str, Any]:
    """A process that waits `seconds` on a delay, then ends."""
    return {
        "project": "Ops",
        "app": "Timers",
        "name": name,
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "start", "type": "trigger"},
                    {"key": "wait", "type": "delay", "params": {"seconds": seconds}},
                    {"key": "done", "type": "end"},
                ],
                "connections": [
                    {"source": "start", "target": "wait"},
                    {"source": "wait", "target": "done"},
                ],
            }
        ],
    }
