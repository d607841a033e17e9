"""Fixtures of the integration tests: a NATS JetStream of their own for each test,
a database of each store kind and an API client over it.

(`nats_url` could move to tests/conftest.py once the e2e tests want it too; they
use tests/nats_support directly meanwhile.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import LogCapture

from services.bootstrap import Loom
from tests.harness.clock import MovableClock
from tests.harness.looms import Client, api_client, open_on_clock, settings
from tests.harness.site import Site, loopback_only, serving
from tests.nats_support import delete_streams, nats_server_url, unique_nats_url


@pytest.fixture(scope="session")
def nats_server() -> str:
    """A NATS server with JetStream: LOOM_TEST_NATS_URL, the local one, or a throw-away one."""
    return nats_server_url()


@pytest.fixture
async def nats_url(nats_server: str) -> AsyncIterator[str]:
    """A LOOM_NATS_URL with a subject prefix of its own; its streams are deleted afterwards."""
    url, prefix = unique_nats_url(nats_server)
    yield url
    await delete_streams(nats_server, prefix)


# --- a store of each kind, and the API over it --------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A LOOM_DATABASE_URL of the test's own: a SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/loom.db"
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    """The whole app (`web_app`) on `database_url`, answering tokens minted with SECRET."""
    async with api_client(Loom(settings(database_url))) as test_client:
        yield test_client


# --- the world outside, and time ----------------------------------------------------


@pytest.fixture
def site() -> Iterator[Site]:
    """A fake outside HTTP site on loopback (see tests/harness/site.py)."""
    with serving() as served:
        yield served


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address the test's code connects to; anything but loopback fails the test."""
    return loopback_only(monkeypatch)


@pytest.fixture
def clock() -> MovableClock:
    """A clock standing at T0 until the test moves it."""
    return MovableClock()


@pytest.fixture
async def clocked_loom(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Loom]:
    """A started Loom on SQLite and on `clock`, allowed to call the fake site on loopback."""
    loom = await open_on_clock(tmp_path, clock)
    yield loom
    await loom.stop()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every structlog entry of the test (an app must be built after this fixture)."""
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture],
        cache_logger_on_first_use=False,
    )
    yield capture
    structlog.configure(**previous)
