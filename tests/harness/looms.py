"""Loom built for a test: its settings, a started Loom, and the API over it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

from domain.ports import Clock
from infra.settings import Settings
from services.bootstrap import Loom, web_app
from tests.support import SECRET

Client = AsyncTestClient[Any]
"""The API as a test client speaks to it."""


def sqlite_url(tmp_path: Path) -> str:
    """A LOOM_DATABASE_URL of a SQLite file of the test's own."""
    return f"sqlite:///{tmp_path}/loom.db"


def settings(database_url: str, **env: str) -> Settings:
    """Settings on `database_url` answering tokens minted with SECRET; `env` adds LOOM_* ones."""
    return Settings.from_env({"LOOM_DATABASE_URL": database_url, "LOOM_JWT_SECRET": SECRET} | env)


async def open_loom(database_url: str, clock: Clock | None = None, **env: str) -> Loom:
    """A started Loom on `database_url` (see `settings`), on `clock` when given."""
    loom = Loom(settings(database_url, **env), clock=clock)
    await loom.start()
    return loom


async def open_on_clock(tmp_path: Path, clock: Clock, allow: str | None = "127.0.0.1") -> Loom:
    """A started Loom on a SQLite file in `tmp_path`, on `clock`, calling out only to what
    `allow` lists (LOOM_HTTP_ALLOW; by default the loopback the fake site is on)."""
    env = {} if allow is None else {"LOOM_HTTP_ALLOW": allow}
    return await open_loom(sqlite_url(tmp_path), clock, **env)


@contextlib.asynccontextmanager
async def api_client(loom: Loom) -> AsyncIterator[Client]:
    """The whole app (`web_app`) over `loom`, as a test client; a 500 is answered, not raised."""
    async with AsyncTestClient(app=web_app(loom), raise_server_exceptions=False) as client:
        yield client
