"""The replay's order plan: reproducible, prices between modal and max, quality from real HVI data."""

from __future__ import annotations

import pytest

from actors.core.commodities import get_spec
from gateway.locations import Locator, load_cities
from gateway.replay import DEFAULT_FILES, Endpoints, build_plan, load_hvi, load_rows, staple_from_variety


@pytest.fixture(scope="module")
def inputs():  # type: ignore[no-untyped-def]
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


def test_plan_is_reproducible_and_within_portal_prices(inputs) -> None:  # type: ignore[no-untyped-def]
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
    api = {
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
