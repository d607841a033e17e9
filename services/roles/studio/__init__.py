"""The Studio: Loom's browser page to design, save, run and watch processes.

Everything is static (HTML, CSS, ES modules) and shipped inside this package, so
`/studio` needs no build step and no other server. Mount it with::

    Litestar(route_handlers=[..., studio_router()])

`GET /studio` answers the page; `GET /studio/static/<file>` its assets. Neither
needs a token: the page holds the token itself (from `#token=` or pasted) and
sends it only as `Authorization: Bearer` on API calls and as `?token=` on the
execution WebSocket, as the contract says.
"""

from __future__ import annotations

from pathlib import Path

from litestar import MediaType, Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

__all__ = ["STATIC_DIR", "studio_router"]

STATIC_DIR = Path(__file__).parent / "static"

# Opt-out keys understood by Litestar's AbstractAuthenticationMiddleware
# ("exclude_from_auth") and by guards that look for a public flag.
_PUBLIC_OPT = {"exclude_from_auth": True, "public": True, "auth": False}

_PAGE_HEADERS = {
    # The page only talks to the server that served it; nothing is loaded from elsewhere.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@get(
    ["/studio"],
    include_in_schema=False,
    opt=_PUBLIC_OPT,
    name="studio:page",
    sync_to_thread=False,
)
def studio_page() -> Response[bytes]:
    """The Studio page itself."""
    html = (STATIC_DIR / "index.html").read_bytes()
    return Response(content=html, media_type=MediaType.HTML, headers=_PAGE_HEADERS)


def studio_router() -> Router:
    """Route handlers for `GET /studio` and `GET /studio/static/*`, no auth required."""
    static = create_static_files_router(
        path="/studio/static",
        directories=[STATIC_DIR],
        name="studio:static",
        opt=dict(_PUBLIC_OPT),
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )
    return Router(
        path="/",
        route_handlers=[studio_page, static],
        opt=dict(_PUBLIC_OPT),
        include_in_schema=False,
    )
