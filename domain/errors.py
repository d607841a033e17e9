"""What the domain refuses, in words a client can act on."""

from __future__ import annotations

import msgspec


class DomainError(Exception):
    """Base of every refusal the domain makes."""

    def __init__(self, detail: str, key: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key


class Problem(msgspec.Struct, frozen=True):
    detail: str
    key: str | None = None


class DefinitionInvalid(DomainError):
    """A process definition breaks a rule; `problems` lists every one found."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        super().__init__(first.detail, first.key)
        self.problems = problems


class ExpressionError(DomainError):
    """A CEL expression does not compile, or failed while evaluating."""


class InvalidCommand(DomainError):
    """A command does not fit the aggregate's current state."""
