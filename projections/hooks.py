"""The webhook index: which tenant's process and trigger a hook token starts."""

from __future__ import annotations

from typing import Protocol

import msgspec


class Hook(msgspec.Struct, frozen=True):
    token: str
    tenant: str
    process_id: str
    key: str


class HookIndex(Protocol):
    """Rows derived from `HookIssued` events, across tenants (adapters: infra/readmodel)."""

    def add(self, hooks: list[Hook]) -> None:
        """Add rows; a token already there is kept as it is."""
        ...

    def find(self, token: str) -> Hook | None: ...

    def close(self) -> None: ...
