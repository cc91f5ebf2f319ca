"""The web console in real headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``; never a downloaded browser) against the real gateway of the shared ``gw``
fixture (uvicorn, Ray shards, PostgreSQL, Redis); marker e2e:

- sign in with an API key: kept in sessionStorage only (no URL, cookie or localStorage), routed to
  the page of the key's role;
- a crossing pair of orders placed through the API shows on the trader page without a reload
  (ladder level, then the trade on the tape and the ask's kg reduced by the fill);
- an order cancelled from the page is CANCELLED in the API with its open kg;
- a trader's page never shows another party's PRIVATE order (ladder, my orders, page text);
- operator: drain and resume from the page; halt from the page and an API order is then rejected
  ``SHARD_HALTED``;
- screenshots of both pages saved as test artifacts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM = os.environ.get("TRADEDESK_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 15_000

if not (Path(CHROMIUM).exists() or shutil.which("chromium")):  # .ci/run installs it with apt-get
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def browser(gw: Gateway) -> Iterator[Any]:
    """Chromium, started after the gateway (Playwright's sync API runs an event loop in this
    thread, and the gateway's set-up runs its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: ``$TRADEDESK_TEST_ARTIFACTS`` when set, else pytest's tmp dir."""
    where = os.environ.get("TRADEDESK_TEST_ARTIFACTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def market(gw: Gateway) -> dict[str, Any]:
    """A fresh market with a seller, a buyer (traders) and an outsider party, each with a key."""
    region = unique_region()
    tag = region.replace("-", "").lower()
    m = {
        "region": region,
        "shard": f"{region}.cotton",
        "seller": f"sel-{tag}",
        "buyer": f"buy-{tag}",
        "other": f"oth-{tag}",
    }
    for who in ("seller", "buyer", "other"):
        m[f"{who}_key"] = gw.party(m[who], ["trader"], name=who.title(), kyc_status="VERIFIED")
    m["operator_key"] = gw.party(f"ops-{tag}", ["operator"], name="Ops", kyc_status="VERIFIED")
    # the market exists once an order opened it
    placed = post(
        gw, m["seller_key"], "/v1/orders/availabilities", availability("s-open", region, price=7400)
    )
    m["first_order"] = placed["order_id"]
    return m


Market = dict[str, Any]


def sell(gw: Gateway, m: Market, coid: str, price: int, who: str = "seller", **kw: Any) -> dict[str, Any]:
    """Place an availability of 10 t for ``who`` through the API (201)."""
    body = availability(coid, m["region"], price, **kw)
    return post(gw, m[f"{who}_key"], "/v1/orders/availabilities", body)


def buy(gw: Gateway, m: Market, coid: str, price: int, who: str = "buyer", **kw: Any) -> dict[str, Any]:
    """Place a requirement of 4 t for ``who`` through the API (201)."""
    return post(gw, m[f"{who}_key"], "/v1/orders/requirements", requirement(coid, m["region"], price, **kw))


def post(gw: Gateway, key: str, path: str, body: Any = None, status: int = 201) -> dict[str, Any]:
    with gw.client(key) as c:
        r = c.post(path, json=body)
    assert r.status_code == status, r.text
    return dict(r.json())


def sign_in(browser: Any, gw: Gateway, key: str, market: str | None = None) -> Any:
    """A fresh browser context signed in through the form; on the page the key's role leads to."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = ctx.new_page()
    page.goto(gw.base + "/ui")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/*", timeout=WAIT_MS)
    if market is not None:
        page.goto(f"{gw.base}/ui/trader?market={market}")
        page.wait_for_function("(m) => document.body.dataset.ready === m", arg=market, timeout=WAIT_MS)
    return page


def test_sign_in_keeps_the_key_in_the_session_only(browser: Any, gw: Gateway, market: dict[str, Any]) -> None:
    page = sign_in(browser, gw, market["buyer_key"])
    assert page.url == gw.base + "/ui/trader"
    page.wait_for_function("() => document.getElementById('who').textContent.length > 0", timeout=WAIT_MS)
    assert page.text_content("#who") == f"{market['buyer']} · trader"
    assert page.evaluate("sessionStorage.getItem('tradedesk.apiKey')") == market["buyer_key"]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert market["buyer_key"] not in page.url
    ops = sign_in(browser, gw, market["operator_key"])
    assert ops.url == gw.base + "/ui/operator"
    # a wrong key stays on the sign-in page with a message, nothing stored
    bad = browser.new_context().new_page()
    bad.goto(gw.base + "/ui")
    bad.get_by_label("API key").fill("td_not_a_real_key_123")
    bad.get_by_role("button", name="Sign in").click()
    bad.wait_for_selector("#flash:not([hidden])", timeout=WAIT_MS)
    assert "sign-in failed" in bad.text_content("#flash")
    assert bad.evaluate("sessionStorage.length") == 0
    for p in (page, ops, bad):
        p.context.close()


def ladder_row(page: Any, price: int) -> Any:
    """The ladder's row holding ``price`` (paise/kg) on either side."""
    text = f"{price:,}"
    return page.locator("#ladder tbody tr", has=page.locator("td", has_text=text))


def test_crossing_orders_update_depth_and_trades_live(
    browser: Any, gw: Gateway, market: dict[str, Any], artifacts: Path
) -> None:
    page = sign_in(browser, gw, market["buyer_key"], market["shard"])
    page.evaluate("window.__noReload = 42")
    ladder_row(page, 7400).wait_for(timeout=WAIT_MS)  # the opening order, from the first depth read
    # a new resting ask (10 t at 7,050) appears on the ladder live
    post(
        gw, market["seller_key"], "/v1/orders/availabilities", availability("s-cross", market["region"], 7050)
    )
    row = ladder_row(page, 7050)
    row.wait_for(timeout=WAIT_MS)
    assert "10,000 kg (10 t)" in row.inner_text()
    # a crossing requirement (4 t at up to 7,200) trades 4 t at the resting price
    placed = post(
        gw, market["buyer_key"], "/v1/orders/requirements", requirement("b-cross", market["region"])
    )
    (alloc,) = placed["allocations"]
    assert (alloc["quantity_kg"], alloc["price"]) == (4000, 7050)
    trade = page.locator("#trades tbody tr", has_text="7,050 paise/kg")
    trade.wait_for(timeout=WAIT_MS)
    assert "4,000 kg (4 t)" in trade.first.inner_text()
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('#ladder td.ask')].some(td => td.textContent === t)",
        arg="6,000 kg (6 t)",
        timeout=WAIT_MS,
    )
    assert page.text_content("#last-price") == "7,050 paise/kg (Rs 7,050/quintal)"
    assert page.text_content("#vwap") == "7,050 paise/kg (Rs 7,050/quintal) over 4,000 kg (4 t)"
    page.locator("#allocations tbody tr", has_text="bought").wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__noReload") == 42  # the same document: no reload happened
    shot = artifacts / "console-trader.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.context.close()


def test_cancel_an_order_from_the_page(browser: Any, gw: Gateway, market: dict[str, Any]) -> None:
    placed = post(
        gw,
        market["seller_key"],
        "/v1/orders/availabilities",
        availability("s-cancel", market["region"], 7600),
    )
    oid = placed["order_id"]
    page = sign_in(browser, gw, market["seller_key"], market["shard"])
    row = page.locator(f"#my-orders tr[data-order-id='{oid}']")
    row.wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name=f"Cancel order {oid}").click()
    page.locator(f"#my-orders tr[data-order-id='{oid}'] td.status", has_text="CANCELLED").wait_for(
        timeout=WAIT_MS
    )
    assert "cancelled (10,000 kg (10 t))" in page.text_content("#flash")
    with gw.client(market["seller_key"]) as c:
        got = c.get(f"/v1/orders/{oid}").json()
    assert (got["status"], got["open_kg"], got["cancelled_kg"]) == ("CANCELLED", 0, 10_000)
    assert ladder_row(page, 7600).count() == 0
    page.context.close()


def test_a_trader_never_sees_another_partys_private_order(
    browser: Any, gw: Gateway, market: dict[str, Any]
) -> None:
    page = sign_in(browser, gw, market["buyer_key"], market["shard"])
    hidden = sell(gw, market, "o-private", 6111, who="other", visibility="PRIVATE")
    mine = buy(gw, market, "b-private", 5222, visibility="PRIVATE", intent="NEGOTIATE")
    # a public order after both: once it shows, the stream has carried the private ones too
    post(
        gw, market["other_key"], "/v1/orders/availabilities", availability("o-public", market["region"], 7333)
    )
    ladder_row(page, 7333).wait_for(timeout=WAIT_MS)
    page.locator(f"#my-orders tr[data-order-id='{mine['order_id']}']").wait_for(timeout=WAIT_MS)
    text = page.inner_text("body")
    assert "6,111" not in text and hidden["order_id"] not in text and "o-private" not in text
    assert "b-private" in text and "PRIVATE" in page.inner_text("#my-orders")
    assert ladder_row(page, 6111).count() == 0
    # the other party sees its own private order, and never the buyer's
    other = sign_in(browser, gw, market["other_key"], market["shard"])
    other.locator(f"#my-orders tr[data-order-id='{hidden['order_id']}']").wait_for(timeout=WAIT_MS)
    assert "b-private" not in other.inner_text("body") and "5,222" not in other.inner_text("body")
    page.context.close()
    other.context.close()


def shard_row(page: Any, shard: str) -> Any:
    return page.locator(f"#shards tr[data-shard-id='{shard}']")


def test_operator_drains_and_resumes_from_the_page(
    browser: Any, gw: Gateway, market: dict[str, Any], artifacts: Path
) -> None:
    page = sign_in(browser, gw, market["operator_key"])
    shard_row(page, market["shard"]).wait_for(timeout=WAIT_MS)
    page.wait_for_selector("#risk dt", timeout=WAIT_MS)
    shot = artifacts / "console-operator.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.get_by_role("button", name=f"Drain shard {market['shard']}").click()
    page.locator(f"#shards tr[data-shard-id='{market['shard']}'][data-status='DRAINED']").wait_for(
        timeout=WAIT_MS
    )
    with gw.client(market["seller_key"]) as c:
        r = c.post("/v1/orders/availabilities", json=availability("s-drained", market["region"]))
    assert r.status_code == 503 and "draining" in r.json()["detail"]
    page.get_by_role("button", name=f"Resume shard {market['shard']}").click()
    page.locator(f"#shards tr[data-shard-id='{market['shard']}'][data-status='UP']").wait_for(timeout=WAIT_MS)
    resumed = sell(gw, market, "s-resumed", 7400)["order_id"]
    # a rejected command (cancelling a closed order) shows among the recent rejects by reason
    post(gw, market["seller_key"], f"/v1/orders/{resumed}/cancel", status=200)
    post(gw, market["seller_key"], f"/v1/orders/{resumed}/cancel", status=409)
    reject = page.locator("#rejects tr[data-reason='ORDER_CLOSED']", has_text=market["shard"])
    reject.wait_for(timeout=WAIT_MS)
    assert reject.locator("td").nth(2).inner_text() == "1"
    page.context.close()


def test_operator_halts_a_shard_from_the_page_then_api_orders_are_rejected(
    browser: Any, gw: Gateway, market: dict[str, Any]
) -> None:
    page = sign_in(browser, gw, market["operator_key"])
    shard_row(page, market["shard"]).wait_for(timeout=WAIT_MS)
    page.get_by_label(f"Halt reason for shard {market['shard']}").fill("fat finger on the ask side")
    page.get_by_role("button", name=f"Halt shard {market['shard']}").click()
    shard_row(page, market["shard"]).locator(".halted").wait_for(timeout=WAIT_MS)
    assert "fat finger on the ask side" in shard_row(page, market["shard"]).inner_text()
    with gw.client(market["seller_key"]) as c:
        r = c.post("/v1/orders/availabilities", json=availability("s-halted", market["region"]))
    assert r.status_code >= 400, r.text
    assert r.json()["reason"] == "SHARD_HALTED", r.text
    page.get_by_role("button", name=f"Resume shard {market['shard']}").click()
    page.wait_for_function(
        "(s) => !document.querySelector(`#shards tr[data-shard-id='${s}'] .halted`)",
        arg=market["shard"],
        timeout=WAIT_MS,
    )
    post(
        gw, market["seller_key"], "/v1/orders/availabilities", availability("s-after-halt", market["region"])
    )
    page.context.close()
