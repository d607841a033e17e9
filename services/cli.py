"""`loom`: serve the product, mint dev tokens, audit, replay and re-run executions.

The composition root of the command line: without LOOM_JWT_SECRET (and without
LOOM_JWT_PUBLIC_KEY) the commands that verify or sign tokens use the data
directory's generated secret (`infra.auth.with_generated_secret`), so the token
`loom serve` prints and the ones `loom token` mints agree. Such a Loom serves
on a loopback address only, and only it prints a dev token.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
from typing import Any

import msgspec

from infra.settings import Settings
from services.tools import commands as tools

DEV_TOKEN_TTL_S = 86400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve roles (embedded default: all)")
    serve.add_argument(
        "role",
        nargs="?",
        default="all",
        type=_roles,
        metavar="ROLES",
        help="all, or one or more of api, engine, projector, gateway joined by commas "
        "(e.g. api,gateway: the Studio and its WebSocket from one process)",
    )
    token = sub.add_parser("token", help="print a signed dev JWT")
    token.add_argument("--tenant", required=True)
    token.add_argument("--sub", default="dev")
    token.add_argument(
        "--ttl", type=int, help=f"seconds (default: {DEV_TOKEN_TTL_S}, or LOOM_JWT_MAX_TTL if less)"
    )
    tools.add_parsers(sub)  # audit, replay, executions, state, diff, export, import
    rerun = sub.add_parser(
        "rerun", help="re-run an execution from an element (asks the running Loom's API)"
    )
    rerun.add_argument("--tenant", required=True)
    rerun.add_argument("execution_id")
    rerun.add_argument("--from", dest="from_key", required=True, metavar="KEY")
    rerun.add_argument("--version", type=int, help="process version (default: the original's)")
    rerun.add_argument("--input", help="JSON input (default: the original's)")
    rerun.add_argument("--sub", default="dev", help="the actor recorded (for a minted token)")
    rerun.add_argument("--url", help="Loom's base URL (default: http://LOOM_HOST:LOOM_PORT)")
    rerun.add_argument("--token", help="a bearer token (default: one minted for --tenant/--sub)")
    secrets = sub.add_parser("secrets", help="the master key of tenants' secrets")
    secrets.add_argument("action", choices=["rotate-key"])
    projections = sub.add_parser("projections", help="read-model maintenance")
    projections.add_argument("action", choices=["rebuild"])
    projections.add_argument("--tenant", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if _needs_jwt_key(args):
        try:
            settings = _with_jwt_secret(settings)
        except (OSError, ValueError) as exc:
            print(f"error: cannot use the generated JWT secret: {exc}", file=sys.stderr)
            return 2
    if args.command == "serve":
        return _serve(settings, args.role)
    if args.command == "token":
        return _token(settings, args.tenant, args.sub, args.ttl)
    if args.command in tools.COMMANDS:
        return tools.run(settings, args)
    if args.command == "rerun":
        return _rerun(settings, args)
    if args.command == "secrets":
        import os

        from services.tools.rotate import rotate_key

        return rotate_key(settings, dict(os.environ))
    return _rebuild(settings, args.tenant)


def _needs_jwt_key(args: argparse.Namespace) -> bool:
    """Whether the command verifies or signs tokens (only those touch the generated secret)."""
    if args.command == "serve":
        return args.role == "all" or bool({"api", "gateway"} & set(args.role.split(",")))
    return args.command in ("token", "rerun")


def _with_jwt_secret(settings: Settings) -> Settings:
    from infra.auth import with_generated_secret

    return with_generated_secret(settings)


def _uses_generated_secret(settings: Settings) -> bool:
    return settings.jwt_secret_is_dev and settings.jwt_public_key is None


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _dev_ttl(settings: Settings) -> int:
    cap = settings.jwt_max_ttl_s
    return DEV_TOKEN_TTL_S if cap is None else min(DEV_TOKEN_TTL_S, cap)


def _roles(text: str) -> str:
    """`all`, or known roles joined by commas, each once (argparse's type check)."""
    names = [name.strip() for name in text.split(",")]
    known = ("all", "api", "engine", "projector", "gateway")
    if any(name not in known for name in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give all, or roles among api, engine, projector, gateway "
            "joined by commas, each once"
        )
    if "all" in names and len(names) > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: all already has every role")
    return ",".join(names)


def _serve(settings: Settings, role: str) -> int:
    """Serve some roles (distributed, needs LOOM_NATS_URL) or all of them (`all`)."""
    import uvicorn

    from infra.auth import GENERATED_SECRET_FILE, data_directory, mint_token
    from infra.http_server import EdgeLimits, server_config
    from infra.logging import configure_logging
    from services.bootstrap import ROLES, Loom, web_app
    from services.roles.heap import settle_heap

    if role != "all" and settings.nats_url is None:
        print(f"{role!r} runs apart only over NATS: set LOOM_NATS_URL", file=sys.stderr)
        return 2
    if role != "all" and settings.database_url.startswith("sqlite:"):
        print(
            f"{role!r} shares its store with other processes: "
            "set LOOM_DATABASE_URL to a postgresql:// URL",
            file=sys.stderr,
        )
        return 2
    roles = ROLES if role == "all" else tuple(role.split(","))
    listens = bool({"api", "gateway"} & set(roles))
    generated = _uses_generated_secret(settings)
    secret_file = data_directory(settings.database_url) / GENERATED_SECRET_FILE
    if listens and generated and not is_loopback(settings.host):
        print(
            f"refusing to listen on LOOM_HOST={settings.host}: that is not a loopback address, "
            f"and tokens are checked with the dev secret generated in {secret_file}. "
            "Set LOOM_JWT_SECRET (or LOOM_JWT_PUBLIC_KEY), or serve on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    import structlog

    log = structlog.get_logger("loom")
    if listens and generated:
        log.warning(
            "LOOM_JWT_SECRET is not set: tokens are signed with the dev secret generated in "
            f"{secret_file}; set LOOM_JWT_SECRET in production"
        )
    from infra.secret_keys import SecretsKeyError

    try:
        loom = Loom(settings, roles=roles)
        loom.secrets.check_master_key()
    except SecretsKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not listens:
        return _run_headless(loom, role)
    app = web_app(loom)
    app.on_startup.append(settle_heap)  # after the Loom has started
    if "api" in roles and generated:
        # Only for the generated dev secret: a token signed with an operator's secret
        # must never end up in a log.
        token = mint_token(settings.jwt_secret, "dev", "dev", _dev_ttl(settings))
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"\nLoom on {base}\n  Studio: {base}/studio#token={token}\n  token:  {token}\n"
            f"  try:    curl -H 'Authorization: Bearer {token}' {base}/api/v1/element-types\n",
            flush=True,
        )
    limits = EdgeLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_header_bytes=settings.http_max_header_bytes,
    )
    # Heartbeats: WebSocket ping frames every 20 s; a client silent for 20 s more is dropped.
    config = server_config(
        app,
        host=settings.host,
        port=settings.port,
        limits=limits,
        log_config=None,
        access_log=False,  # the API logs each request itself, on structlog's fast path
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the Ctrl-C it handled once it has stopped cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 3  # 3: uvicorn's "startup failed"


def _run_headless(loom: Any, role: str) -> int:
    """Roles without HTTP: run until SIGINT or SIGTERM, then stop cleanly."""
    import asyncio
    import signal

    import structlog

    from services.roles.heap import settle_heap

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await loom.start()
        settle_heap()
        structlog.get_logger("loom").info("roles started", roles=role)
        try:
            await stopping.wait()
        finally:
            await loom.stop()

    asyncio.run(run())
    return 0


def _token(settings: Settings, tenant: str, sub: str, ttl: int | None) -> int:
    from infra.auth import is_valid_tenant_id, mint_token

    if not is_valid_tenant_id(tenant):
        print(f"invalid tenant id {tenant!r}", file=sys.stderr)
        return 2
    if settings.jwt_public_key is not None:
        print(
            "error: this Loom verifies tokens signed elsewhere (LOOM_JWT_PUBLIC_KEY)",
            file=sys.stderr,
        )
        return 2
    cap = settings.jwt_max_ttl_s
    if ttl is None:
        ttl = _dev_ttl(settings)
    elif cap is not None and ttl > cap:
        print(f"error: --ttl {ttl} exceeds LOOM_JWT_MAX_TTL ({cap} s)", file=sys.stderr)
        return 2
    print(mint_token(settings.jwt_secret, tenant, sub, ttl))
    return 0


def _rerun(settings: Settings, args: argparse.Namespace) -> int:
    import httpx

    from infra.auth import is_valid_tenant_id, mint_token

    body: dict[str, Any] = {"from": args.from_key}
    if args.version is not None:
        body["version"] = args.version
    if args.input is not None:
        try:
            body["input"] = msgspec.json.decode(args.input)
        except msgspec.DecodeError as exc:
            print(f"error: --input is not JSON: {exc}", file=sys.stderr)
            return 2
    if not is_valid_tenant_id(args.tenant):
        print(f"invalid tenant id {args.tenant!r}", file=sys.stderr)
        return 2
    token = args.token
    if token is None:
        if settings.jwt_public_key is not None:
            print("error: pass --token (this Loom verifies tokens it cannot mint)", file=sys.stderr)
            return 2
        token = mint_token(settings.jwt_secret, args.tenant, args.sub, _dev_ttl(settings))
    base = args.url or f"http://{settings.host}:{settings.port}"
    url = f"{base.rstrip('/')}/api/v1/executions/{args.execution_id}/rerun"
    try:
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        print(f"error: cannot reach Loom at {base}: {exc}", file=sys.stderr)
        return 2
    print(response.text)
    return 0 if response.status_code == 202 else 1


def _rebuild(settings: Settings, tenant: str) -> int:
    from services.bootstrap import Loom

    loom = Loom(settings)
    count = loom.projector.rebuild(tenant)
    listed = loom.catalog_projector.rebuild(tenant)
    print(f"rebuilt tenant {tenant}: {count} events folded, {listed} processes and projects listed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
