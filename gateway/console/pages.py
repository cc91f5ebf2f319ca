"""The console's HTML pages and browser assets (``/ui``, ``/ui/trader``, ``/ui/operator``,
``/ui/static/<name>``); none of them is part of the API's OpenAPI document.

Pages hold no data and need no key: each page's script signs in with the key kept in the
browser's ``sessionStorage`` and reads everything through the API. Every page answer carries a
Content-Security-Policy that lets scripts, styles and connections come from this origin only
(plotly.js needs inline styles), and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from gateway.problems import Problem

router = APIRouter(prefix="/ui", include_in_schema=False)

_HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

#: The pages: path -> (template, title).
PAGES = {
    "": ("signin.html", "Sign in"),
    "trader": ("trader.html", "Trader"),
    "operator": ("operator.html", "Operator"),
}


def _plotly_js() -> Path:
    """plotly.min.js as shipped in the ``plotly`` package (``plotly/package_data``)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def static_files() -> dict[str, Path]:
    """Every asset the pages load, by the name under ``/ui/static/`` (a fixed list: no paths from
    the client reach the file system)."""
    own = {p.name: p for p in (_HERE / "static").iterdir() if p.suffix in (".js", ".css")}
    return {**own, "plotly.min.js": _plotly_js()}


def _page(request: Request, name: str) -> HTMLResponse:
    template, title = PAGES[name]
    ctx: dict[str, Any] = {"title": title, "page": name or "signin"}
    return templates.TemplateResponse(request, template, ctx, headers=_HEADERS)


@router.get("", response_class=HTMLResponse)
async def signin(request: Request) -> HTMLResponse:
    return _page(request, "")


@router.get("/trader", response_class=HTMLResponse)
async def trader(request: Request) -> HTMLResponse:
    return _page(request, "trader")


@router.get("/operator", response_class=HTMLResponse)
async def operator(request: Request) -> HTMLResponse:
    return _page(request, "operator")


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    """One asset of :func:`static_files` (cached for an hour), else 404."""
    path = static_files().get(name)
    if path is None:
        raise Problem("not-found", "no such asset")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
