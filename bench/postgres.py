"""The PostgreSQL every benchmark writes to, in throw-away schemas."""

from __future__ import annotations

import os

import psycopg

from infra.store.postgres import parse_postgres_url


def postgres_url(given: str | None = None) -> str:
    """`given`, else LOOM_BENCH_DATABASE_URL, else LOOM_TEST_DATABASE_URL, else this machine's."""
    return (
        given
        or os.environ.get("LOOM_BENCH_DATABASE_URL")
        or os.environ.get("LOOM_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test"
    )


def drop_schema(url: str, schema: str) -> None:
    """Drop a benchmark's schema and everything in it."""
    params, _ = parse_postgres_url(url)
    with psycopg.connect(
        dbname=params.dbname,
        host=params.host,
        port=params.port,
        user=params.user,
        password=params.password,
        autocommit=True,
    ) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# Benches measure the engine, not the per-tenant fairness policy (bench.fairness_bench does).
NO_TENANT_LIMITS = {"LOOM_TENANT_STARTS_PER_S": "0", "LOOM_TENANT_MAX_RUNNING": "0"}
