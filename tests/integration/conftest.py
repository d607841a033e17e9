"""Fixtures of the integration tests: a NATS JetStream of their own for each test.

(`nats_url` could move to tests/conftest.py once the e2e tests want it too; they
use tests/nats_support directly meanwhile.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
