"""``tradedesk bench console``: page load time and live-update latency of the web console, measured
in headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright) on a running server.

- **page load**: the trader page navigated to (key already in the tab's session) until its data is
  on the page (``document.body.dataset.ready``: depth, trades, reference, my orders read); the first
  load is cold (plotly.js not cached), the others warm. Also DOMContentLoaded from Navigation Timing.
- **book update**: an availability placed through the API (``POST``) until the page's depth ladder
  is re-drawn for it (stream event, then the depth read the page makes on it: the ladder's "as of
  shard seq" line changes; the order itself sits above the 20 levels shown).
- **trade update**: a crossing requirement placed through the API until the trade is on the tape
  (stream event straight into the DOM).
- **baseline** (same run): the ``POST`` itself (placed -> HTTP answer) and ``GET /healthz``.

Times are epoch ms from the one machine clock (the browser's ``Date.now()`` in a MutationObserver,
Python's ``time.time()`` around the ``POST``). The bench's two parties (``bench-console-*``) trade only
with each other: their orders sit at a point with a 1 km haul limit and a staple range no replay lot
has, above the replay's prices, and their rests are cancelled after each round. The point moves by
up to a degree per run, so a run never meets another run's orders. Needs the admin key (parties).
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from bench import JsonOut

LOC: dict[str, Any] = {
    "lat": 23.0,
    "lon": 77.5,
    "city": "bench point",
}  # plus a random offset of up to 1 degree per run
QUALITY = {"staple_length_mm": 37.9, "micronaire": 4.2, "strength_gtex": 30.0}
_OBSERVE = """([sel, text]) => { window.__hit = null;
  const was = [...document.querySelectorAll(sel)].map(td => td.textContent).join("|");
  const shown = () => text === null
    ? [...document.querySelectorAll(sel)].map(td => td.textContent).join("|") !== was
    : [...document.querySelectorAll(sel)].some(td => td.textContent.startsWith(text));
  const obs = new MutationObserver(() => { if (shown()) { window.__hit = Date.now(); obs.disconnect(); } });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


def _pcts(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {
        "n": len(s),
        "p50_ms": round(statistics.median(s), 1),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
        "max_ms": round(s[-1], 1),
    }


class _Api:
    def __init__(self, base: str, admin: str) -> None:
        self.base, self.admin = base, admin

    def call(self, key: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        r = httpx.request(method, self.base + path, json=body, headers={"Authorization": f"Bearer {key}"})
        if r.status_code >= 400:
            raise typer.BadParameter(f"{method} {path}: {r.status_code} {r.text[:200]}")
        return dict(r.json())

    def key_for(self, party: str, role: str, *, create: bool) -> str:
        if create:
            fields = {"party_id": party, "name": party, "role": role, "kyc_status": "VERIFIED"}
            self.call(self.admin, "POST", "/v1/admin/parties", fields)
        body = {"party_id": party, "roles": [role], "label": "bench console"}
        return str(self.call(self.admin, "POST", "/v1/admin/api-keys", body)["token"])


def _signed_in(browser: Any, base: str, key: str, market: str) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 1700}).new_page()
    page.goto(base + "/ui")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/*")
    return page


def _load(page: Any, base: str, path: str, ready: str) -> tuple[float, float]:
    """(ms until the page's data is shown, DOMContentLoaded ms) of one navigation."""
    t0 = time.time() * 1000
    page.goto(base + path)
    page.wait_for_function("(m) => document.body.dataset.ready === m", arg=ready, timeout=30_000)
    done = page.evaluate("Date.now()")
    dcl = page.evaluate("performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    return done - t0, float(dcl)


def _until_shown(page: Any, api: _Api, key: str, path: str, body: Any, shown: list[str | None]) -> Any:
    """Place ``body``; ``(POST ms, placed -> shown ms, API answer)``, ``shown`` = [CSS selector,
    text a matching element starts with, or None: its text changed]."""
    page.evaluate(_OBSERVE, shown)
    t0 = time.time() * 1000
    out = api.call(key, "POST", path, body)
    t1 = time.time() * 1000
    page.wait_for_function("() => window.__hit", timeout=30_000)
    return t1 - t0, page.evaluate("window.__hit") - t0, out


def _round(
    page: Any, api: _Api, keys: tuple[str, str], market: str, coid: str, price: int, point: dict[str, float]
) -> list[float]:
    """One ask (book update) and the bid that trades with it (trade update); the rest of the ask is
    cancelled. ``[POST ask ms, ask shown ms, POST bid ms, trade shown ms]``."""
    seller, buyer = keys
    region, _, commodity = market.rpartition(".")
    where = {**LOC, **point, "region": region}
    qty = {"value": 10, "unit": "tonne"}
    ask: dict[str, Any] = {"client_order_id": f"{coid}-s", "commodity": commodity, "quantity": qty}
    ask |= {"price_paise_per_kg": price, "location": where, "quality": QUALITY}
    p1, d1, placed = _until_shown(page, api, seller, "/v1/orders/availabilities", ask, ["#depth-seq", None])
    bid: dict[str, Any] = {
        "client_order_id": f"{coid}-b",
        "commodity": commodity,
        "quantity": {"value": 4, "unit": "tonne"},
    }
    bid |= {"max_price_paise_per_kg": price, "location": where, "max_distance_km": 1}
    bid["quality_ranges"] = {"staple_length_mm": {"min": 37.8, "max": 38.0}}
    p2, d2, out = _until_shown(
        page, api, buyer, "/v1/orders/requirements", bid, ["#trades td", f"{price:,} paise/kg"]
    )
    if [a["price"] for a in out["allocations"]] != [price]:
        raise typer.BadParameter(f"the bench's requirement did not trade with its own ask: {out}")
    api.call(seller, "POST", f"/v1/orders/{placed['order_id']}/cancel")  # its 6 t rest
    return [p1, d1, p2, d2]


def _screenshots(browser: Any, base: str, market: str, shots: Path, trader: str, admin: str) -> None:
    """``console-trader.png`` (``trader``'s view of ``market``) and ``console-operator.png`` (admin)."""
    shots.mkdir(parents=True, exist_ok=True)
    tp = _signed_in(browser, base, trader, market)
    tp.goto(f"{base}/ui/trader?market={market}")
    tp.wait_for_function("(m) => document.body.dataset.ready === m", arg=market)
    tp.wait_for_timeout(1500)  # plotly (async) has drawn the chart
    tp.screenshot(path=str(shots / "console-trader.png"), full_page=True)
    op = _signed_in(browser, base, admin, market)
    op.goto(base + "/ui/operator")
    op.wait_for_function("() => document.body.dataset.ready === 'shards'")
    op.wait_for_timeout(6000)  # a second refresh: decisions/s needs two readings
    op.screenshot(path=str(shots / "console-operator.png"), full_page=True)
    tp.context.close()
    op.context.close()


def run(
    base: str, admin: str, market: str, rounds: int, chromium: str, shots: Path | None, party: str | None
) -> dict[str, Any]:
    """Measure (see the module docstring); screenshots of the trader page (as ``party``, a real
    party of the server, when given) and the operator page (admin key) into ``shots``."""
    from playwright.sync_api import sync_playwright

    api = _Api(base, admin)
    tag = uuid.uuid4().hex[:6]
    rng = random.Random(tag)
    point = {"lat": round(LOC["lat"] + rng.random(), 4), "lon": round(LOC["lon"] + rng.random(), 4)}
    seller = api.key_for(f"bench-console-s-{tag}", "seller", create=True)
    buyer = api.key_for(f"bench-console-b-{tag}", "buyer", create=True)
    health = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        httpx.get(base + "/healthz")
        health.append((time.perf_counter() - t0) * 1000)
    loads, dcls, post_book, book, post_trade, trade = [], [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        if shots is not None:  # first: the market as the server has it, before the bench's own trades
            _screenshots(
                browser,
                base,
                market,
                shots,
                api.key_for(party, "buyer", create=False) if party else buyer,
                admin,
            )
        page = _signed_in(browser, base, buyer, market)
        for _ in range(rounds):
            ms, dcl = _load(page, base, f"/ui/trader?market={market}", market)
            loads.append(ms)
            dcls.append(dcl)
        for i in range(rounds):
            p1, d1, p2, d2 = _round(page, api, (seller, buyer), market, f"bc-{tag}-{i}", 9_900 + 7 * i, point)
            post_book.append(p1)
            book.append(d1)
            post_trade.append(p2)
            trade.append(d2)
        browser.close()
    return {
        "bench": "console",
        "market": market,
        "rounds": rounds,
        "page_load_cold_ms": round(loads[0], 1),
        "page_load_warm": _pcts(loads[1:] or loads),
        "dom_content_loaded_warm": _pcts(dcls[1:] or dcls),
        "book_update": _pcts(book),
        "trade_update": _pcts(trade),
        "baseline": {"post_order_book": _pcts(post_book), "post_order_trade": _pcts(post_trade)},
        "baseline_healthz": _pcts(health),
    }


def command(
    gateway: Annotated[str, typer.Option(help="base URL of a running server")] = "http://127.0.0.1:8000",
    api_key_file: Annotated[Path, typer.Option(help="the admin key file")] = Path("admin.key"),
    market: Annotated[str, typer.Option(help="shard id whose trader page is measured")] = "IN-MP.cotton",
    rounds: Annotated[int, typer.Option(min=2, max=200)] = 10,
    chromium: Annotated[str, typer.Option(help="Chromium executable")] = "/usr/bin/chromium",
    screenshots: Annotated[Path | None, typer.Option(help="save console-{trader,operator}.png here")] = None,
    party: Annotated[str | None, typer.Option(help="real party for the trader screenshot")] = None,
    json_out: JsonOut = False,
) -> None:
    """Page load time and API -> page update latency of the web console on a running server."""
    if not api_key_file.is_file():
        typer.echo(f"tradedesk bench console: no admin key file {api_key_file}", err=True)
        raise typer.Exit(2)
    out = run(gateway, api_key_file.read_text().strip(), market, rounds, chromium, screenshots, party)
    typer.echo(json.dumps(out) if json_out else json.dumps(out, indent=2))
