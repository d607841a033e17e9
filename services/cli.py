"""`loom`: serve the product, mint dev tokens, audit and replay executions."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from uuid import UUID

import msgspec

from infra.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a role (embedded default: all)")
    serve.add_argument(
        "role", nargs="?", default="all", choices=["all", "api", "engine", "projector", "gateway"]
    )
    token = sub.add_parser("token", help="print a signed dev JWT")
    token.add_argument("--tenant", required=True)
    token.add_argument("--sub", default="dev")
    token.add_argument("--ttl", type=int, default=86400)
    for name in ("replay", "audit"):
        cmd = sub.add_parser(name, help=f"{name} an execution from its events")
        cmd.add_argument("--tenant", required=True)
        cmd.add_argument("execution_id")
        if name == "audit":
            cmd.add_argument("--json", action="store_true")
    projections = sub.add_parser("projections", help="read-model maintenance")
    projections.add_argument("action", choices=["rebuild"])
    projections.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "serve":
        return _serve(settings, args.role)
    if args.command == "token":
        return _token(settings, args.tenant, args.sub, args.ttl)
    if args.command == "replay":
        return _replay(settings, args.tenant, args.execution_id)
    if args.command == "audit":
        return _audit(settings, args.tenant, args.execution_id, args.json)
    return _rebuild(settings, args.tenant)


def _serve(settings: Settings, role: str) -> int:
    import uvicorn

    from infra.auth import mint_token
    from infra.logging import configure_logging
    from services.bootstrap import Loom, web_app

    if role != "all":
        print(
            f"role {role!r} needs LOOM_NATS_URL (distributed mode is not built yet)",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    import structlog

    log = structlog.get_logger("loom")
    if settings.jwt_secret_is_dev:
        log.warning("LOOM_JWT_SECRET is not set: using the dev secret; never do this in production")
    app = web_app(Loom(settings))
    if settings.jwt_secret_is_dev or settings.jwt_public_key is None:
        token = mint_token(settings.jwt_secret, "dev", "dev")
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"\nLoom on {base}\n  Studio: {base}/studio#token={token}\n  token:  {token}\n"
            f"  try:    curl -H 'Authorization: Bearer {token}' {base}/api/v1/element-types\n",
            flush=True,
        )
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
    return 0


def _token(settings: Settings, tenant: str, sub: str, ttl: int) -> int:
    from infra.auth import is_valid_tenant_id, mint_token

    if not is_valid_tenant_id(tenant):
        print(f"invalid tenant id {tenant!r}", file=sys.stderr)
        return 2
    print(mint_token(settings.jwt_secret, tenant, sub, ttl))
    return 0


def _history(settings: Settings, tenant: str, execution_id: str) -> tuple[Any, list[Any]] | None:
    from infra.store import open_event_store
    from infra.store.naming import validate_tenant

    try:
        validate_tenant(tenant)
        stream = UUID(execution_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    store = open_event_store(settings.database_url)
    history = store.read(tenant, stream)
    if not history:
        print(f"execution {execution_id} not found in tenant {tenant}", file=sys.stderr)
        return None
    return store, history


def _replay(settings: Settings, tenant: str, execution_id: str) -> int:
    from domain.events import ExecutionStarted
    from domain.replay import replay
    from services.catalog import DefinitionCatalog

    found = _history(settings, tenant, execution_id)
    if found is None:
        return 2
    store, history = found
    started = history[0].event
    if not isinstance(started, ExecutionStarted):
        print(f"{execution_id} is not an execution", file=sys.stderr)
        return 2
    catalog = DefinitionCatalog(store)
    graph = catalog.graph_of(tenant, catalog.load(tenant, started.process_id), started.version)
    report = replay(execution_id, graph, [r.event for r in history])
    if report.deterministic:
        print(f"deterministic: {report.events} events, every decision matches history")
        return 0
    d = report.divergence
    assert d is not None
    print(f"diverges at event {d.seq}: {d.reason}")
    print(f"  history: {msgspec.json.encode(d.expected).decode()}")
    print(f"  code:    {msgspec.json.encode(d.decided).decode()}")
    return 1


def _audit(settings: Settings, tenant: str, execution_id: str, as_json: bool) -> int:
    from domain.events import event_data, event_type

    found = _history(settings, tenant, execution_id)
    if found is None:
        return 2
    for r in found[1]:
        e = r.event
        row = {
            "seq": r.seq,
            "at": e.at,
            "actor": e.actor,
            "type": event_type(e),
            "element": getattr(e, "element", None),
            "data": event_data(e),
        }
        if as_json:
            print(msgspec.json.encode(row).decode())
        else:
            summary = msgspec.json.encode(row["data"]).decode()
            summary = summary if len(summary) <= 80 else summary[:77] + "..."
            print(
                f"{r.seq:>5}  {e.at}  {e.actor:<12} {row['type']:<20} {row['element'] or '-':<16} {summary}"
            )
    return 0


def _rebuild(settings: Settings, tenant: str) -> int:
    from services.bootstrap import Loom

    loom = Loom(settings)
    count = loom.projector.rebuild(tenant)
    print(f"rebuilt tenant {tenant}: {count} events folded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
