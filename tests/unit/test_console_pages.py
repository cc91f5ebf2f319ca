"""The console's pages and assets without starting anything: HTML with a same-origin CSP, every
asset a page loads is served from the installed packages (no internet), nothing else is, the pages
stay out of the OpenAPI document; and the Agmarknet modal reference the trader page shows."""

from __future__ import annotations

import asyncio
import re
import statistics
from typing import Any

import httpx
import pytest

from actors.core.regions import region_for_state
from actors.settings import Settings
from gateway.app import create_app
from gateway.console.pages import CSP
from gateway.console.reads import modal_reference
from persistence.agmarknet import default_agmarknet_paths, read_file


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(Settings(), "postgresql://unused/none", "redis://unused")


def _get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get(path)

    return asyncio.run(go())


@pytest.mark.parametrize("path", ["/ui", "/ui/trader", "/ui/operator"])
def test_pages_are_html_with_a_same_origin_policy_and_local_assets(app: Any, path: str) -> None:
    r = _get(app, path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP and "script-src 'self'" in CSP
    assert r.headers["referrer-policy"] == "no-referrer"
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', r.text)
    assert "/ui/static/console.js" in assets and "/ui/static/console.css" in assets
    assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text)  # nothing from another origin
    for a in assets:
        got = _get(app, a)
        assert got.status_code == 200, a
        assert got.headers["content-type"].startswith("text/css" if a.endswith(".css") else "text/javascript")


def test_trader_page_loads_plotly_from_the_installed_package(app: Any) -> None:
    from importlib import resources

    assert '<script src="/ui/static/plotly.min.js" id="plotly-js" async>' in _get(app, "/ui/trader").text
    r = _get(app, "/ui/static/plotly.min.js")
    shipped = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    assert r.status_code == 200 and r.content == shipped and len(shipped) > 1_000_000
    assert _get(app, "/ui/signin").status_code == 404


@pytest.mark.parametrize("name", ["nope.js", "..%2Fpages.py", "%2E%2E%2F%2E%2E%2Fapp.py", "console.html"])
def test_only_the_listed_assets_are_served(app: Any, name: str) -> None:
    r = _get(app, "/ui/static/" + name)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_pages_are_not_in_the_api_document(app: Any) -> None:
    paths = app.openapi()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
    assert {"/v1/me", "/v1/market", "/v1/market/{region}/{commodity}/reference", "/v1/admin/rejects"} <= set(
        paths
    )


def test_modal_reference_is_the_median_of_the_states_latest_day() -> None:
    (cotton,) = [p for p in default_agmarknet_paths() if "cotton" in p.name]
    rows, _ = read_file(cotton)
    mp = [r for r in rows if region_for_state(r.state) == "IN-MP"]
    last = max(r.day for r in mp)
    modals = [r.modal_price for r in mp if r.day == last]
    ref = modal_reference("IN-MP", "cotton")
    assert ref == {
        "modal": int(statistics.median(modals)),
        "day": last.isoformat(),
        "markets": len(modals),
        "low": min(modals),
        "high": max(modals),
    }
    assert ref["markets"] >= 1 and ref["low"] <= ref["modal"] <= ref["high"]
    assert modal_reference("FR-75", "cotton") == {
        "modal": None,
        "day": None,
        "markets": 0,
        "low": None,
        "high": None,
    }
