"""The shard's storability check: the fast path of ``command_problem`` gives the same answer as the
field-by-field :func:`persistence.storable.value_problem` walk, on commands with any text, integer,
float and nested values (hypothesis), and names the failing field."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.core.commands import AmendOrder, CancelOrder, PlaceOrder
from persistence.storable import BIGINT_MAX, command_problem, value_problem

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["GJ-1", "a\x00b", "\ud800x", "Gujarāt", ""]),
)
ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([BIGINT_MAX, BIGINT_MAX + 1])
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.inf, math.nan, 21.0])
)
quality = st.dictionaries(texts, floats, max_size=3)


@st.composite
def places(draw: st.DrawFn) -> PlaceOrder:
    return PlaceOrder(
        ts=draw(ints),
        party_id=draw(texts),
        client_order_id=draw(texts),
        side=draw(st.sampled_from(["BUY", "SELL"])),
        commodity="cotton",
        region=draw(texts),
        quantity_kg=draw(ints),
        price=draw(ints),
        lat=draw(floats),
        lon=draw(floats),
        quality=draw(quality),
        quality_ranges=draw(st.dictionaries(texts, st.tuples(floats, floats), max_size=2)),
        city=draw(st.one_of(st.none(), texts)),
        max_distance_km=draw(st.one_of(st.none(), floats)),
        allow_list=tuple(draw(st.lists(texts, max_size=3))),
        valid_until=draw(st.one_of(st.none(), ints)),
    )


@settings(max_examples=400, deadline=None)
@given(places())
def test_fast_check_equals_the_field_walk_on_place_orders(cmd: PlaceOrder) -> None:
    assert command_problem(cmd) == value_problem(cmd)


@settings(max_examples=200, deadline=None)
@given(ts=ints, party=texts, order_id=texts, qty=st.one_of(st.none(), ints))
def test_fast_check_equals_the_field_walk_on_cancels_and_amends(
    ts: int, party: str, order_id: str, qty: int | None
) -> None:
    cancel = CancelOrder(ts, party, order_id)
    amend = AmendOrder(ts, party, order_id, quantity_kg=qty)
    assert command_problem(cancel) == value_problem(cancel)
    assert command_problem(amend) == value_problem(amend)


def test_the_failing_field_is_named() -> None:
    ok = PlaceOrder(1, "S-1", "c-1", "SELL", "cotton", "IN-GJ", 1000, 6000, 21.0, 72.0, {"micronaire": 4.2})
    assert command_problem(ok) is None
    ok.client_order_id = "c\x001"
    assert command_problem(ok) == "client_order_id contains NUL (U+0000)"
    ok.client_order_id, ok.price = "c-1", 2**63
    assert command_problem(ok) == "price is outside the 64-bit integer range"
    ok.price, ok.quality = 6000, {"micronaire": math.nan}
    assert command_problem(ok) == "quality.micronaire is not a finite number"
    ok.quality, ok.lat = {}, math.inf
    assert command_problem(ok) == "lat is not a finite number"
