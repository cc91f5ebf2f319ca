"""Quantity rules of fills with proposals in the same plan, and expiry of reserved orders: the two
cases the property test found, reproduced with exact events and quantities."""

from __future__ import annotations

from actors.core.commands import AcceptProposal, ReleaseReservation, Tick
from actors.core.engine import ShardEngine
from actors.core.events import Expired, Proposed, Released
from tests.unit.core_builders import buy, fills, oid, sell


def _pt() -> ShardEngine:
    return ShardEngine("IN-GJ", "cotton", profile="price_time")


def test_a_proposal_does_not_shrink_the_takers_open_quantity_for_min_order_rules() -> None:
    """A 600 kg availability (min order 500) meets a NEGOTIATE requirement of 599 kg (a proposal,
    nothing reserved) and then a DIRECT_BUY requirement of 1 kg. The 1 kg would leave 599 kg open on
    the availability, below its min order, so it is not allocated (it used to be: ALLOCATED 1 kg)."""
    e = _pt()
    e.execute([buy("n1", "A", 599, 7000, 1, intent="NEGOTIATE"), buy("d1", "B", 1, 7000, 2)])
    res = e.execute([sell("s1", "C", 600, 6900, 3, min_order_kg=500)])
    assert [ev.type for ev in res.events] == ["ORDER_ACCEPTED", "PROPOSED"]
    prop = res.events[1].payload
    assert isinstance(prop, Proposed)
    assert (prop.buy_order_id, prop.sell_order_id, prop.quantity_kg, prop.price) == (
        oid(1),
        oid(3),
        599,
        7000,
    )
    assert fills(res.events) == []
    s1 = e.orders[oid(3)]
    assert (s1.open_kg, s1.allocated_kg, s1.status) == (600, 0, "OPEN")
    assert e.orders[oid(2)].open_kg == 1
    # a buyer of the whole 600 kg gets it; the proposal is then stale
    res = e.execute([buy("d2", "D", 600, 7000, 6)])
    assert fills(res.events) == [(oid(5), oid(3), 600, 6900)]
    assert e.execute([AcceptProposal(7, "A", prop.proposal_id)]).results[0]["reason"] == "PROPOSAL_STALE"


def test_a_taker_takes_no_partial_fill_below_its_min_order() -> None:
    """A 500 kg availability with min order 500 skips requirements of 400 and 100 kg (each would
    leave part of it open) and fills a 500 kg requirement whole."""
    e = _pt()
    e.execute([buy("d1", "B", 400, 7000, 1), buy("d2", "D", 100, 7000, 2)])
    res = e.execute([sell("s1", "C", 500, 6900, 3, min_order_kg=500)])
    # 400 kg leaves 100 open (< min order 500): no fill with d1; d2 (100 kg) likewise
    assert fills(res.events) == []
    res = e.execute([buy("d3", "E", 500, 7000, 4)])
    assert fills(res.events) == [(oid(4), oid(3), 500, 6900)]


def _reserved_all() -> tuple[ShardEngine, str]:
    e = _pt()
    e.execute([sell("s1", "A", 1000, 7000, 1, valid_until=100)])
    res = e.execute([buy("b1", "C", 1000, 7000, 2, intent="NEGOTIATE")])
    pid = res.results[0]["proposals"][0]["proposal_id"]
    rid = e.execute([AcceptProposal(3, "C", pid, hold_ms=1_000)]).events[0].payload.reservation_id
    o = e.orders[oid(1)]
    assert (o.open_kg, o.reserved_kg, o.status) == (0, 1000, "PARTIALLY_FILLED")
    return e, rid


def test_a_fully_reserved_order_expires_on_time_and_its_released_quantity_is_expired() -> None:
    e, rid = _reserved_all()
    res = e.execute([Tick(100)])
    assert [(ev.type, ev.ts, ev.payload) for ev in res.events] == [
        ("EXPIRED", 100, Expired(order_id=oid(1), expired_kg=0))
    ]
    assert e.orders[oid(1)].status == "EXPIRED"
    res = e.execute([ReleaseReservation(200, "A", rid)])
    assert res.events[0].payload == Released(
        reservation_id=rid,
        buy_order_id=oid(2),
        sell_order_id=oid(1),
        buyer_id="C",
        seller_id="A",
        quantity_kg=1000,
        price=7000,
        reason="SELLER_RELEASED",
    )
    o = e.orders[oid(1)]
    assert (o.open_kg, o.reserved_kg, o.expired_kg, o.status) == (0, 0, 1000, "EXPIRED")
    assert e.best_bid_ask()["ask"] is None  # it did not come back to the book after its expiry
    assert fills(e.execute([buy("b2", "D", 1000, 7000, 300)]).events) == []


def test_a_snapshot_taken_while_reserved_restores_the_same_expiry() -> None:
    e, rid = _reserved_all()
    snap = e.snapshot()
    tail = [Tick(100), ReleaseReservation(200, "A", rid), buy("b2", "D", 1000, 7000, 300)]
    live = [ev.to_dict() for ev in e.execute(tail).events]
    restored = ShardEngine.from_snapshot(snap)
    assert [ev.to_dict() for ev in restored.execute(tail).events] == live
    assert restored.snapshot() == e.snapshot()
