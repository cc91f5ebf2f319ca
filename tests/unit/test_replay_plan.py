"""The replay's order plan: reproducible, prices between modal and max, quality from real HVI data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.core.commodities import get_spec
from gateway.replay.client import Endpoints
from gateway.replay.locations import Locator, load_cities
from gateway.replay.plan import DEFAULT_FILES, build_plan, load_rows
from gateway.replay.quality import load_hvi, staple_from_variety

BOTH_REPORT = Path(__file__).parent / "data" / "maharashtra_cotton_both_price_and_arrival.csv"


@pytest.fixture(scope="module")
def inputs():
    rows, _ = load_rows(list(DEFAULT_FILES), limit=400)
    return rows, Locator.load(), load_cities(), load_hvi()


def test_staple_from_variety() -> None:
    assert staple_from_variety("Shanker 6 (B) 30mm FIne") == 30.0
    assert staple_from_variety("H-4(A) 27mm FIne") == 27.0
    assert staple_from_variety("American") is None


def test_hvi_entries_are_real_ranges() -> None:
    hvi = load_hvi()
    assert len(hvi) > 1000
    assert all(25 <= length <= 34 and 2.5 <= mic <= 5.5 and 25 <= st <= 37 for length, mic, st, _ in hvi)


def test_plan_is_reproducible_and_within_portal_prices(inputs) -> None:
    rows, loc, cities, hvi = inputs
    a = build_plan(rows, loc, cities, hvi, seed=7)
    b = build_plan(list(reversed(rows)), loc, cities, hvi, seed=7)
    flat_a = [(p.party_id, p.body) for _, s, bb in a.days for p in s + bb]
    flat_b = [(p.party_id, p.body) for _, s, bb in b.days for p in s + bb]
    assert flat_a == flat_b
    assert [d for d, _, _ in a.days] == sorted(d for d, _, _ in a.days)
    spec = get_spec("cotton")
    n = 0
    for _, sells, buys in a.days:
        for s, bo in zip(sells, buys, strict=True):
            sb, bb = s.body, bo.body
            assert sb["client_order_id"][:-2] == bb["client_order_id"][:-2]
            assert sb["price_paise_per_kg"] <= bb["max_price_paise_per_kg"]
            assert set(sb["quality"]) == spec.param_names
            for k, v in sb["quality"].items():
                p = spec.param(k)
                assert p is not None and p.low <= v <= p.high
            assert bb["intent"] in ("DIRECT_BUY", "NEGOTIATE")
            assert bb["location"]["region"] == sb["location"]["region"]
            n += 1
    assert n == len(rows)
    assert sum(a.located.values()) == len(rows)
    assert {p.role for p in a.parties.values()} == {"seller", "buyer"}


def test_endpoint_discovery() -> None:
    api: dict[str, Any] = {
        "paths": {
            "/v1/admin/parties": {"post": {}, "get": {}},
            "/v1/admin/api-keys": {"post": {}},
            "/v1/orders/availabilities": {"post": {}},
            "/v1/orders/requirements": {"post": {}},
            "/v1/orders/batch": {"post": {}},
            "/v1/orders/{order_id}/cancel": {"post": {}},
        }
    }
    ep = Endpoints.discover(api)
    assert (ep.parties, ep.api_keys, ep.batch) == (
        "/v1/admin/parties",
        "/v1/admin/api-keys",
        "/v1/orders/batch",
    )
    assert ep.single({"side": "SELL"}) == "/v1/orders/availabilities"
    assert ep.single({"side": "BUY"}) == "/v1/orders/requirements"


def test_single_commodity_report_is_planned_with_the_named_commodity() -> None:
    rows, reports = load_rows([BOTH_REPORT], commodity="cotton")
    assert reports[0]["layout"] == "portal-report" and reports[0]["rows"] == 5
    plan = build_plan(rows, Locator.load(), load_cities(), load_hvi(), seed=7)
    assert plan.unlocated == 0
    orders = [p.body for _, s, b in plan.days for p in s + b]
    assert len(orders) == 10
    assert {o["commodity"] for o in orders} == {"cotton"}
    assert {o["location"]["region"] for o in orders} == {"IN-MH"}
    # days in date order: 01, 02, 03 Dec 2025; the first day's sells are the two Amarawati rows
    assert [d.isoformat() for d, _, _ in plan.days] == ["2025-12-01", "2025-12-02", "2025-12-03"]
    first_sells = plan.days[0][1]
    assert sorted(p.body["price_paise_per_kg"] for p in first_sells) == [7062, 7850]
    assert sorted(p.body["quantity"]["value"] for p in first_sells) == [9.5, 110.0]  # tonnes
