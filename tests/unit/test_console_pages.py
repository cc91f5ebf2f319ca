"""The console's pages and assets without starting anything: HTML with a same-origin CSP, every
asset a page loads is served from the installed packages (no internet), nothing else is, the pages
stay out of the OpenAPI document; and the Agmarknet reference the trader page shows is the price
bands' reference."""

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
from persistence.agmarknet_reference import market_reference


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


@pytest.mark.parametrize("region", ["IN-GJ", "IN-MH"])
def test_console_reference_is_the_price_bands_reference(region: str) -> None:
    (cotton,) = [p for p in default_agmarknet_paths() if "cotton" in p.name]
    rows, _ = read_file(cotton)
    state = [r for r in rows if region_for_state(r.state) == region]
    last = max(r.day for r in state)
    window = [r.modal_price for r in state if (last - r.day).days < 30]
    latest = [r.modal_price for r in state if r.day == last]
    ref = modal_reference(region, "cotton")
    assert ref == {
        "modal": statistics.median_low(window),  # the 30-day low median, not the latest day's
        "window_days": 30,
        "samples": len(window),
        "day": last.isoformat(),
        "markets": len(latest),
        "low": min(latest),
        "high": max(latest),
    }
    # the very figure the shard records as its MARKET_REFERENCE (price bands, circuit breaker)
    assert (ref["modal"], ref["day"]) == market_reference(region, "cotton")
    none = {
        "modal": None,
        "window_days": 30,
        "samples": 0,
        "day": None,
        "markets": 0,
        "low": None,
        "high": None,
    }
    assert modal_reference(region, "cotton", source="none") == none  # TRADEDESK_MARKET_REFERENCE=none
    assert modal_reference("IN-KL", "cotton") == none  # no cotton market in Kerala: no band either
    assert modal_reference("FR-75", "cotton") == none
