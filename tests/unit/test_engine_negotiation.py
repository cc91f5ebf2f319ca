"""Negotiation flow: proposal -> accept (reservation with hold) -> confirm or release / hold expiry."""

from __future__ import annotations

from actors.core.commands import (
    AcceptProposal,
    CancelOrder,
    ConfirmReservation,
    RejectProposal,
    ReleaseReservation,
    Tick,
)
from actors.core.engine import ShardEngine
from tests.unit.core_builders import buy, fills, oid, sell


def _proposed() -> tuple[ShardEngine, str]:
    e = ShardEngine("IN-GJ", "cotton", profile="price_time")
    e.execute([sell("s1", "A", 1000, 7000, 1)])
    res = e.execute([buy("b1", "C", 600, 7000, 2, intent="NEGOTIATE")])
    assert [ev.type for ev in res.events] == ["ORDER_ACCEPTED", "PROPOSED"]
    prop = res.results[0]["proposals"][0]
    assert (prop["proposal_id"], prop["quantity_kg"], prop["price"]) == ("P-IN-GJ.cotton-3", 600, 7000)
    assert e.orders[oid(1)].open_kg == 1000  # a proposal reserves nothing
    return e, prop["proposal_id"]


def test_accept_reserves_and_confirm_allocates() -> None:
    e, pid = _proposed()
    res = e.execute([AcceptProposal(10, "C", pid, hold_ms=5_000)])
    assert res.events[0].type == "RESERVED"
    assert res.events[0].payload.hold_until == 5_010
    rid = res.events[0].payload.reservation_id
    assert (e.orders[oid(1)].open_kg, e.orders[oid(1)].reserved_kg) == (400, 600)
    assert e.execute([ConfirmReservation(11, "C", rid)]).results[0]["reason"] == "UNKNOWN_RESERVATION"
    res = e.execute([ConfirmReservation(12, "A", rid)])
    assert fills(res.events) == [(oid(2), oid(1), 600, 7000)]
    assert res.events[0].type == "CONFIRMED"
    assert (e.orders[oid(1)].reserved_kg, e.orders[oid(1)].allocated_kg) == (0, 600)
    assert e.orders[oid(2)].status == "FILLED"


def test_release_returns_quantity_to_the_book() -> None:
    e, pid = _proposed()
    rid = e.execute([AcceptProposal(10, "C", pid)]).events[0].payload.reservation_id
    res = e.execute([ReleaseReservation(11, "A", rid)])
    assert res.events[0].payload.reason == "SELLER_RELEASED"
    assert (e.orders[oid(1)].open_kg, e.orders[oid(1)].reserved_kg) == (1000, 0)
    assert e.execute([AcceptProposal(12, "C", pid)]).results[0]["reason"] == "PROPOSAL_STALE"


def test_hold_expiry_releases_the_reservation() -> None:
    e, pid = _proposed()
    e.execute([AcceptProposal(10, "C", pid, hold_ms=100)])
    res = e.execute([Tick(110)])
    assert [(ev.type, ev.payload.reason, ev.ts) for ev in res.events] == [("RELEASED", "HOLD_EXPIRED", 110)]
    assert e.orders[oid(2)].open_kg == 600


def test_reject_proposal_and_only_the_buyer_may_accept() -> None:
    e, pid = _proposed()
    assert e.execute([AcceptProposal(10, "A", pid)]).results[0]["reason"] == "UNKNOWN_PROPOSAL"
    assert e.execute([RejectProposal(11, "C", pid)]).events[0].type == "PROPOSAL_REJECTED"
    assert e.execute([AcceptProposal(12, "C", pid)]).results[0]["reason"] == "PROPOSAL_STALE"


def test_release_of_a_cancelled_order_goes_to_cancelled() -> None:
    e, pid = _proposed()
    rid = e.execute([AcceptProposal(10, "C", pid)]).events[0].payload.reservation_id
    e.execute([CancelOrder(11, "A", oid(1))])
    e.execute([ReleaseReservation(12, "C", rid)])
    o = e.orders[oid(1)]
    assert (o.open_kg, o.reserved_kg, o.cancelled_kg, o.status) == (0, 0, 1000, "CANCELLED")


def test_accept_when_the_seller_sold_out_is_stale_not_a_credit_problem() -> None:
    from actors.core.risk.types import RiskVerdicts

    e, pid = _proposed()
    e.execute([buy("b2", "D", 1000, 7000, 5)])  # a direct buyer takes the whole availability
    res = e.execute([AcceptProposal(10, "C", pid)], RiskVerdicts(pass_all=True, credit_grants={"C": 10**12}))
    assert res.results[0]["reason"] == "PROPOSAL_STALE"
