"""Secrets inside element requests: named in templates, recorded as `***`, filled in late.

A `{{ secrets.NAME }}` part of an `http` or `agent` template renders to a `Sealed`
string: its text shows `***` where the value goes, and it remembers its parts.
The orchestrator records the request with `seal`: the shown text in
`NodeExecuting.input`, and beside it the slots (where in the request a sealed
string sits, and its parts). Only the engine, at the moment it performs the
effect, puts the values in (`unseal`), and whatever the outside answers is
`redact`ed before it is recorded. So no event, status or export ever holds a
value, and a replay, which reads answers back, never needs one.

The slots are made only by templates compiled from the definition: data that
happens to read `{{ secrets.X }}` or `***` is text like any other, so an input
can never make the engine reveal a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
MAX_SECRET_BYTES = 64 * 1024
SHOWN = "***"
# The one form a template may use: a name fixed in the definition, never one chosen by data.
_REFERENCE = re.compile(r"secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_MENTION = re.compile(r"\bsecrets\b")


class SecretRef:
    """A `{{ secrets.NAME }}` part of a template."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Sealed(str):
    """A rendered string holding secrets: reads as its shown text, keeps its parts."""

    parts: tuple[str | SecretRef, ...]

    def __new__(cls, parts: Iterable[str | SecretRef]) -> Sealed:
        kept = tuple(parts)
        shown = "".join(SHOWN if isinstance(p, SecretRef) else p for p in kept)
        made = super().__new__(cls, shown)
        made.parts = kept
        return made


def reference(source: str) -> str | None:
    """The secret's name when `source` (inside `{{ }}`) is `secrets.NAME`, else None.

    Raises ValueError when the source mentions `secrets` in any other way (an index
    chosen by data, an expression built on a value, a name that cannot be one).
    """
    match = _REFERENCE.fullmatch(source.strip())
    if match is not None:
        name = match.group(1)
        if SECRET_NAME.fullmatch(name) is None:
            raise ValueError(f"{name!r} cannot name a secret: names match {SECRET_NAME.pattern}")
        return name
    if _MENTION.search(source):
        raise ValueError(
            "secrets are named statically: write {{ secrets.NAME }} alone inside the braces"
        )
    return None


def check_name(name: object) -> str:
    if not isinstance(name, str) or SECRET_NAME.fullmatch(name) is None:
        raise ValueError(f"a secret's name must match {SECRET_NAME.pattern}, got {name!r}")
    return name


def check_value(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a secret's value must be a string, got {type(value).__name__}")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise ValueError(f"a secret's value must be at most {MAX_SECRET_BYTES} bytes")
    return value


Slot = list[Any]  # [path, parts]: path is a list of keys and indexes, parts are str | {"secret"}


def seal(request: Any) -> tuple[Any, list[Slot]]:
    """The request as recorded (plain JSON, `***` shown) and the slots that fill it in."""
    slots: list[Slot] = []

    def walk(value: Any, path: list[Any]) -> Any:
        if isinstance(value, Sealed):
            parts = [{"secret": p.name} if isinstance(p, SecretRef) else p for p in value.parts]
            slots.append([path, parts])
            return str(value)
        if isinstance(value, list):
            return [walk(v, [*path, i]) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: walk(v, [*path, k]) for k, v in value.items()}
        return value

    return walk(request, []), slots


def names(slots: Iterable[Slot]) -> list[str]:
    """Every secret the slots use, each once, in first-use order."""
    seen: dict[str, None] = {}
    for _, parts in slots:
        for part in parts:
            if isinstance(part, dict):
                seen[part["secret"]] = None
    return list(seen)


def unseal(request: Any, slots: Iterable[Slot], values: Mapping[str, str]) -> Any:
    """The request as it is sent: each slot's string assembled with the values."""
    out = _copy(request)
    for path, parts in slots:
        text = "".join(values[p["secret"]] if isinstance(p, dict) else p for p in parts)
        if not path:
            return text
        holder = out
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = text
    return out


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """`value` with every occurrence of every secret (in strings and keys) shown as `***`."""
    hidden = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first
    if not hidden:
        return value
    return _redact(value, hidden)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    return str(redact(text, secrets))


def _redact(value: Any, hidden: list[str]) -> Any:
    if isinstance(value, str):
        for secret in hidden:
            if secret in value:
                value = value.replace(secret, SHOWN)
        return value
    if isinstance(value, list):
        return [_redact(v, hidden) for v in value]
    if isinstance(value, dict):
        return {_redact(k, hidden): _redact(v, hidden) for k, v in value.items()}
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value
