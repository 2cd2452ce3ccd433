"""The web dashboard: one page at ``/`` and its static assets, served by the API's own app.

The page and its scripts hold no data. Everything the dashboard shows it reads from
``/api/v1`` in the browser, with the API key the user signs in with, exactly like any
other client; so these routes are public in every mode (``PUBLIC_STATIC`` in
:mod:`tuneforge.api.auth`) and a keyed server shows an anonymous visitor nothing but
the sign-in box. Charts use the plotly.js bundled in the installed ``plotly`` package:
no build step, no CDN, and a Content-Security-Policy that lets the page reach only
this server.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from .. import __version__
from ..core.errors import NotFound

#: Where the page's own HTML, JavaScript and CSS live (shipped in the wheel as package data).
STATIC_DIR = Path(__file__).with_name("dashboard_static")
#: The URL prefix of the assets (the page itself is ``/``).
ASSETS = "/dashboard/assets"
PLOTLY = "plotly.min.js"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: The page may load scripts, styles and data only from this server. plotly.js compiles
#: its WebGL shaders with ``new Function`` (hence unsafe-eval) and injects style tags.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@cache
def plotly_bundle() -> Path | None:
    """The ``plotly.min.js`` of the installed plotly package (None when it is missing)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / PLOTLY
    return path if path.is_file() else None


@cache
def plotly_version() -> str:
    """The installed plotly package's version (the bundle's cache key)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plotly")
    except PackageNotFoundError:
        return "missing"


@cache
def asset_names() -> frozenset[str]:
    """The files the dashboard serves from :data:`STATIC_DIR` (never anything else)."""
    return frozenset(
        p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES
    )


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The dashboard's single page; its routes live in the URL fragment (``#/study/3``)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    html = html.replace("{{version}}", __version__).replace("{{plotly}}", plotly_version())
    return HTMLResponse(html, headers={**HEADERS, "Cache-Control": "no-cache"})


@router.get(ASSETS + "/{name}")
def asset(name: str) -> FileResponse:
    """One of the page's scripts or styles, or the bundled plotly.js."""
    if name == PLOTLY:
        bundle = plotly_bundle()
        if bundle is None:
            raise NotFound("plotly.js is not installed: pip install 'plotly>=5,<7'", field="name")
        # the page asks for it with ?v=<plotly version>, so it may be cached for long
        return FileResponse(
            bundle,
            media_type=MEDIA_TYPES[".js"],
            headers={**HEADERS, "Cache-Control": "public, max-age=604800"},
        )
    if name not in asset_names():
        raise NotFound(f"no dashboard asset named {name!r}", field="name")
    path = STATIC_DIR / name
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[path.suffix],
        headers={**HEADERS, "Cache-Control": "no-cache"},
    )
