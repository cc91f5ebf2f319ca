"""``taker_filter`` (the per-taker form of the hard filters that book scans use) answers exactly what
``hard_filters`` answers for every pair: same None / distance, bit for bit, whichever side takes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as s

from actors.core.orders import Order
from actors.core.scoring import hard_filters, taker_filter

PARTIES = ["P1", "P2", "P3"]
PARAMS = ["staple_mm", "micronaire", "strength_gpt"]


@s.composite
def orders(draw: Any, side: str) -> Order:
    ranges: dict[str, tuple[float, float]] = {}
    quality: dict[str, float] = {}
    for name in PARAMS:
        if side == "BUY" and draw(s.booleans()):
            lo = draw(s.floats(25, 31))
            ranges[name] = (lo, lo + draw(s.floats(0, 6)))
        if side == "SELL" and draw(s.integers(0, 5)):
            quality[name] = draw(s.floats(27, 33))
    visibility = draw(s.sampled_from(["PUBLIC", "PUBLIC", "PUBLIC", "PRIVATE"]))
    low, high = (6003, 6010) if side == "BUY" else (6000, 6005)
    return Order(
        order_id=f"O-{side}-{draw(s.integers(0, 99))}",
        party_id=draw(s.sampled_from(PARTIES)),
        client_order_id="c",
        side=side,
        commodity="cotton",
        region="IN-GJ",
        quantity_kg=1000,
        open_kg=1000,
        price=draw(s.integers(low, high)),
        quality=quality,
        quality_ranges=ranges,
        lat=draw(s.floats(21.5, 23.0)),
        lon=draw(s.floats(70.0, 71.5)),
        max_distance_km=draw(s.one_of(s.none(), s.floats(1.0, 250.0))),
        visibility=visibility,
        allow_list=tuple(sorted(draw(s.sets(s.sampled_from(PARTIES))))) if visibility != "PUBLIC" else (),
        linked_parties=(draw(s.sampled_from(PARTIES)),) if draw(s.integers(0, 3)) == 0 else (),
        created_ts=0,
        updated_ts=0,
        priority=0,
    )


@settings(max_examples=600, deadline=None)
@given(orders("BUY"), orders("SELL"))
def test_taker_filter_equals_hard_filters_both_ways(b: Order, sl: Order) -> None:
    expected = hard_filters(b, sl)
    assert taker_filter(b)(sl) == expected  # the buyer takes
    assert taker_filter(sl)(b) == expected  # the seller takes


def test_taker_filter_examples() -> None:
    def order(side: str, party: str, **kw: Any) -> Order:
        base: dict[str, Any] = dict(
            order_id=f"O-{side}", party_id=party, client_order_id="c", side=side, commodity="cotton",
            region="IN-GJ", quantity_kg=1000, open_kg=1000, price=6000, lat=22.30, lon=70.80,
            created_ts=0, updated_ts=0, priority=0,
        )  # fmt: skip
        base.update(kw)
        return Order(**base)

    b = order("BUY", "P1", quality_ranges={"staple_mm": (28.0, 30.0)}, max_distance_km=100.0)
    assert taker_filter(b)(order("SELL", "P2", quality={"staple_mm": 29.0})) == 0.0
    assert taker_filter(b)(order("SELL", "P2", quality={"staple_mm": 31.0})) is None  # out of range
    assert taker_filter(b)(order("SELL", "P2")) is None  # the parameter is not stated
    assert taker_filter(b)(order("SELL", "P1", quality={"staple_mm": 29.0})) is None  # self-trade
    assert taker_filter(b)(order("SELL", "P2", quality={"staple_mm": 29.0}, price=6001)) is None
    far = order("SELL", "P2", quality={"staple_mm": 29.0}, lat=23.02, lon=72.57)  # Ahmedabad, ~190 km
    assert taker_filter(b)(far) is None and taker_filter(far)(b) is None
    assert taker_filter(order("BUY", "P1"))(far) == -1.0  # no limit on either side: distance not needed
    wide = order("BUY", "P1", max_distance_km=300.0)
    d = taker_filter(wide)(far)
    assert d is not None and 180 < d < 200 and taker_filter(far)(wide) == d
    near_only = order("SELL", "P2", lat=23.02, lon=72.57, max_distance_km=100.0)
    assert taker_filter(wide)(near_only) is None and taker_filter(near_only)(wide) is None  # tighter wins
