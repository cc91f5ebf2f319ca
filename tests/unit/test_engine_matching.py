"""Matching rules of the core with exact expected events (ARCHITECTURE.md, "Matching semantics")."""

from __future__ import annotations

import pytest

from actors.core.commands import AmendOrder, CancelOrder, Tick
from actors.core.engine import ShardEngine
from actors.core.events import Amended, Cancelled, Expired
from actors.core.risk.types import Outcome, RiskDecision, RiskRequest, RiskVerdicts
from tests.unit.core_builders import AHMEDABAD, buy, fills, oid, sell


@pytest.fixture()
def pt() -> ShardEngine:
    return ShardEngine("IN-GJ", "cotton", profile="price_time")


def test_price_priority_and_resting_price(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7100, 1), sell("s2", "B", 1000, 7000, 2)])
    res = pt.execute([buy("b1", "C", 1500, 7200, 3)])
    assert fills(res.events) == [(oid(3), oid(2), 1000, 7000), (oid(3), oid(1), 500, 7100)]
    assert [e.type for e in res.events] == ["ORDER_ACCEPTED", "ALLOCATED", "ALLOCATED"]
    assert pt.orders[oid(1)].open_kg == 500
    assert pt.orders[oid(3)].status == "FILLED"
    assert res.results[0]["allocations"][0]["allocation_id"] == "A-IN-GJ.cotton-4"


def test_time_priority_within_a_price_level(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 600, 7000, 1), sell("s2", "B", 600, 7000, 2)])
    res = pt.execute([buy("b1", "C", 800, 7000, 3)])
    assert fills(res.events) == [(oid(3), oid(1), 600, 7000), (oid(3), oid(2), 200, 7000)]


def test_incoming_sell_trades_at_resting_bid_price(pt: ShardEngine) -> None:
    pt.execute([buy("b1", "C", 1000, 7300, 1)])
    res = pt.execute([sell("s1", "A", 400, 7000, 2)])
    assert fills(res.events) == [(oid(1), oid(2), 400, 7300)]
    assert pt.orders[oid(1)].open_kg == 600
    assert pt.orders[oid(1)].status == "PARTIALLY_FILLED"


def test_no_cross_rests_both_sides(pt: ShardEngine) -> None:
    res = pt.execute([sell("s1", "A", 1000, 7100, 1), buy("b1", "C", 1000, 7000, 2)])
    assert fills(res.events) == []
    assert pt.best_bid_ask() == {
        "shard_id": "IN-GJ.cotton",
        "seq": 2,
        "bid": 7000,
        "bid_kg": 1000,
        "ask": 7100,
        "ask_kg": 1000,
    }
    assert pt.depth() == {
        "shard_id": "IN-GJ.cotton",
        "seq": 2,
        "bids": [[7000, 1000, 1]],
        "asks": [[7100, 1000, 1]],
    }


def test_quality_ranges_are_hard_filters(pt: ShardEngine) -> None:
    pt.execute(
        [
            sell("s1", "A", 1000, 7000, 1, quality={"staple_length_mm": 27.5, "micronaire": 4.2}),
            sell("s2", "B", 1000, 7050, 2, quality={"staple_length_mm": 29.5, "micronaire": 4.2}),
            sell("s3", "D", 1000, 6900, 3, quality={"micronaire": 4.2}),  # staple not stated
        ]
    )
    res = pt.execute([buy("b1", "C", 1000, 7100, 4, quality_ranges={"staple_length_mm": (29.0, 31.0)})])
    assert fills(res.events) == [(oid(4), oid(2), 1000, 7050)]


def test_distance_limit_uses_haversine(pt: ShardEngine) -> None:
    pt.execute([sell("far", "A", 1000, 6900, 1, loc=AHMEDABAD), sell("near", "B", 1000, 7000, 2)])
    res = pt.execute([buy("b1", "C", 1000, 7000, 3, max_distance_km=150.0)])
    assert fills(res.events) == [(oid(3), oid(2), 1000, 7000)]
    res = pt.execute([buy("b2", "D", 1000, 7000, 4, max_distance_km=250.0)])
    assert fills(res.events) == [(oid(5), oid(1), 1000, 6900)]


def test_private_listing_only_meets_allowed_parties(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1, visibility="PRIVATE", allow_list=("C",))])
    res = pt.execute([buy("b1", "D", 500, 7000, 2)])
    assert fills(res.events) == []
    res = pt.execute([buy("b2", "C", 500, 7000, 3)])
    assert fills(res.events) == [(oid(3), oid(1), 500, 7000)]
    assert pt.depth()["asks"] == []  # private listings are not in public depth


def test_self_trade_and_linked_parties_are_prevented(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1), sell("s2", "B", 1000, 7000, 2, linked_parties=("C",))])
    res = pt.execute([buy("b1", "A", 500, 7000, 3)])
    assert fills(res.events) == [(oid(3), oid(2), 500, 7000)]  # A never meets its own s1
    res = pt.execute([buy("b2", "C", 2000, 7000, 5)])
    assert fills(res.events) == [(oid(5), oid(1), 1000, 7000)]  # B is linked to C: skipped
    res = pt.execute([buy("b3", "E", 1000, 7000, 7, linked_parties=("B",))])
    assert fills(res.events) == []


def test_min_order_quantity_and_all_or_none(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 5000, 7000, 1, min_order_kg=2000)])
    res = pt.execute([buy("b1", "C", 1000, 7000, 2)])
    assert fills(res.events) == []  # 1000 kg is below the seller's 2000 kg minimum
    pt.execute([CancelOrder(3, "C", oid(2))])
    res = pt.execute([buy("b2", "D", 6000, 7000, 4, allow_partial=False)])
    assert fills(res.events) == []  # all-or-none requirement: 5000 kg available is not enough
    res = pt.execute([sell("s2", "B", 1000, 7000, 5)])
    assert fills(res.events) == []  # the resting AON requirement takes no partial lot
    assert pt.orders[oid(4)].open_kg == 6000
    res = pt.execute([sell("s3", "E", 1000, 7000, 6)])
    assert fills(res.events) == []
    pt.execute([CancelOrder(7, "A", oid(1))])
    res = pt.execute([sell("s4", "F", 6000, 7000, 8)])
    assert fills(res.events) == [(oid(4), oid(8), 6000, 7000)]


def test_aon_availability_needs_a_buyer_for_the_whole_lot(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 3000, 7000, 1, allow_partial=False)])
    assert fills(pt.execute([buy("b1", "C", 2000, 7000, 2)]).events) == []
    assert fills(pt.execute([buy("b2", "D", 3000, 7000, 3)]).events) == [(oid(3), oid(1), 3000, 7000)]


def test_cancel_removes_open_quantity(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1)])
    res = pt.execute([CancelOrder(2, "A", oid(1))])
    assert [(e.type, e.payload) for e in res.events] == [
        ("CANCELLED", Cancelled(order_id=oid(1), cancelled_kg=1000))
    ]
    assert pt.execute([buy("b1", "C", 1000, 7000, 3)]).events[1:] == []
    res = pt.execute([CancelOrder(4, "A", oid(1))])
    assert res.results[0]["reason"] == "ORDER_CLOSED"


def test_cancel_of_another_partys_order_is_unknown(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1)])
    res = pt.execute([CancelOrder(2, "B", oid(1))])
    assert res.results[0]["reason"] == "UNKNOWN_ORDER"
    assert res.events[0].type == "COMMAND_REJECTED"
    assert pt.orders[oid(1)].open_kg == 1000


def test_amend_quantity_down_keeps_priority(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1), sell("s2", "B", 1000, 7000, 2)])
    res = pt.execute([AmendOrder(3, "A", oid(1), quantity_kg=600)])
    assert res.events[0].payload == Amended(
        order_id=oid(1), quantity_kg=600, open_kg=600, price=7000, priority_lost=False, priority=1
    )
    assert fills(pt.execute([buy("b1", "C", 700, 7000, 4)]).events) == [
        (oid(4), oid(1), 600, 7000),
        (oid(4), oid(2), 100, 7000),
    ]
    assert pt.orders[oid(1)].cancelled_kg == 0 and pt.orders[oid(1)].quantity_kg == 600


@pytest.mark.parametrize("amend", [{"quantity_kg": 1500}, {"price": 6990}])
def test_amend_up_or_price_change_loses_priority(pt: ShardEngine, amend: dict[str, int]) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1), sell("s2", "B", 1000, 6990, 2)])
    res = pt.execute([AmendOrder(3, "A", oid(1), **amend)])
    assert res.events[0].payload.priority_lost is True
    assert res.events[0].payload.priority == 3
    got = fills(pt.execute([buy("b1", "C", 500, 7000, 4)]).events)
    assert got == [(oid(4), oid(2), 500, 6990)]


def test_amend_price_that_crosses_matches_at_once(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7100, 1), buy("b1", "C", 1000, 7000, 2)])
    res = pt.execute([AmendOrder(3, "C", oid(2), price=7100)])
    assert fills(res.events) == [(oid(2), oid(1), 1000, 7100)]
    assert res.results[0]["allocations"][0]["taker_command"] == "amend"


@pytest.mark.parametrize("qty", [600, 300])
def test_amend_to_or_below_allocated_closes_the_remainder(pt: ShardEngine, qty: int) -> None:
    # FIX semantics: OrderQty <= CumQty -> the order is done; its open 400 kg are cancelled
    pt.execute([sell("s1", "A", 1000, 7000, 1), buy("b1", "C", 600, 7000, 2)])
    res = pt.execute([AmendOrder(3, "A", oid(1), quantity_kg=qty)])
    assert [(e.type, e.payload.to_dict()) for e in res.events] == [
        ("CANCELLED", {"order_id": oid(1), "cancelled_kg": 400})
    ]
    assert res.results[0]["status"] == "OK" and res.results[0]["closed"] is True
    assert res.results[0]["cancelled_kg"] == 400
    o = pt.orders[oid(1)]
    assert (o.open_kg, o.quantity_kg, o.status) == (0, 1000, "CANCELLED")
    assert pt.depth()["asks"] == []


def test_depth_with_fewer_than_one_level_raises(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1)])
    assert pt.depth(1)["asks"] == [[7000, 1000, 1]]
    for levels in (0, -1):
        with pytest.raises(ValueError, match="levels must be at least 1"):
            pt.depth(levels)


def test_orders_expire_on_command_time(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1, valid_until=100)])
    assert pt.execute([Tick(99)]).events == []
    res = pt.execute([buy("b1", "C", 1000, 7000, 100)])
    assert [(e.type, e.ts) for e in res.events] == [("EXPIRED", 100), ("ORDER_ACCEPTED", 100)]
    assert res.events[0].payload == Expired(order_id=oid(1), expired_kg=1000)
    assert pt.orders[oid(1)].status == "EXPIRED"


def test_duplicate_client_order_id_returns_original_result(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1)])
    first = pt.execute([buy("b1", "C", 400, 7000, 2)]).results[0]
    again = pt.execute([buy("b1", "C", 999, 1, 3)])
    assert again.events == []
    assert again.results[0]["duplicate"] is True
    assert {k: x for k, x in again.results[0].items() if k != "duplicate"} == {
        k: x for k, x in first.items() if k != "duplicate"
    }
    # a different party may reuse the client order id
    assert pt.execute([buy("b1", "D", 100, 7000, 4)]).results[0]["status"] == "ACCEPTED"


def test_near_duplicates_are_flagged_within_five_minutes(pt: ShardEngine) -> None:
    pt.execute([sell("s1", "A", 1000, 7000, 1_000)])
    r2 = pt.execute([sell("s2", "A", 1000, 7000, 1_000 + 60_000)]).results[0]
    r3 = pt.execute([sell("s3", "A", 1000, 7000, 1_000 + 60_000 + 301_000)]).results[0]
    assert r2["near_duplicate_of"] == oid(1)
    assert "near_duplicate_of" not in r3
    assert pt.orders[r2["order_id"]].near_duplicate_of == oid(1)


def test_quality_profile_ranks_by_weighted_score() -> None:
    q = ShardEngine("IN-GJ", "cotton", profile="quality")
    q.execute(
        [
            # cheaper but at the edge of the range and far away
            sell("s1", "A", 1000, 6800, 1, quality={"staple_length_mm": 29.05}, loc=AHMEDABAD),
            # dearer but on target and close by
            sell("s2", "B", 1000, 6950, 2, quality={"staple_length_mm": 30.0}),
        ]
    )
    res = q.execute(
        [
            buy(
                "b1",
                "C",
                1000,
                7000,
                3,
                quality_ranges={"staple_length_mm": (29.0, 31.0)},
                max_distance_km=300.0,
            )
        ]
    )
    allocs = res.results[0]["allocations"]
    assert [(a["sell_order_id"], a["quantity_kg"], a["price"]) for a in allocs] == [(oid(2), 1000, 6950)]
    bd = allocs[0]["breakdown"]
    assert bd["quality"] == 1.0 and bd["distance_km"] == 0.0
    assert bd["price"] == pytest.approx(50 / 700, abs=1e-6)
    assert allocs[0]["score"] == pytest.approx(0.4 * 50 / 700 + 0.3 + 0.2 + 0.1, abs=1e-6)


class _Decider:
    """Test decider: fixed decisions by seller, records each request."""

    needs_queries = True

    def __init__(self, by_seller: dict[str, RiskDecision], grants: dict[str, int] | None = None):
        self.by_seller = by_seller
        self.grants = grants or {}
        self.requests: list[RiskRequest] = []

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        self.requests.append(request)
        pass_ = RiskDecision(Outcome.PASS)
        return RiskVerdicts(
            {q.key: self.by_seller.get(q.seller_id, pass_) for q in request.queries}, dict(self.grants)
        )


def test_risk_block_warn_and_one_request_per_batch() -> None:
    q = ShardEngine("IN-GJ", "cotton", profile="quality")
    q.process(
        [sell("s1", "A", 1000, 6900, 1), sell("s2", "B", 1000, 6900, 2), sell("s3", "D", 1000, 6950, 3)]
    )
    dec = _Decider(
        {
            "A": RiskDecision(Outcome.BLOCK, ("SANCTIONED_PARTY",)),
            "B": RiskDecision(Outcome.WARN, ("PRICE_ANOMALY",), penalty=0.2),
        }
    )
    res = q.process([buy("b1", "C", 1000, 7000, 4), buy("b2", "E", 500, 7000, 5)], dec)
    assert len(dec.requests) == 1
    pairs = {(x.buy_order_id, x.sell_order_id) for x in dec.requests[0].queries}
    assert ("new:C\x1fb1", oid(1)) in pairs and ("new:E\x1fb2", oid(3)) in pairs
    got = fills(res.events)
    assert all(s != oid(1) for _, s, _, _ in got)  # BLOCK: never allocated
    # WARN lowers B's score by 20%, so D (dearer, no warning) goes first for b1
    assert got[0] == (oid(4), oid(3), 1000, 6950)
    warned = [a for a in res.results[1]["allocations"] if a["seller_id"] == "B"][0]
    assert warned["risk"]["outcome"] == "WARN" and warned["breakdown"]["penalty"] == 0.2


def test_credit_grant_caps_allocation() -> None:
    pt = ShardEngine("IN-GJ", "cotton", profile="price_time")
    pt.process([sell("s1", "A", 1000, 7000, 1)])
    dec = _Decider({}, grants={"C": 7000 * 300})
    res = pt.process([buy("b1", "C", 1000, 7000, 2)], dec)
    assert fills(res.events) == [(oid(2), oid(1), 300, 7000)]
    assert res.credit_used == {"C": 2_100_000}
    assert dec.requests[0].credit_requests == {"C": 7_000_000}


def test_credit_request_of_a_resting_buyer_is_capped_by_its_open_notional() -> None:
    pt = ShardEngine("IN-GJ", "cotton", profile="price_time")
    pt.process([buy("b1", "C", 500, 7000, 1)])
    dec = _Decider({})
    pt.process([sell("s1", "A", 500, 6900, 2), sell("s2", "B", 500, 6950, 3)], dec)
    assert len(dec.requests[0].queries) == 2  # both availabilities could meet the one requirement
    assert dec.requests[0].credit_requests == {"C": 500 * 7000}


def test_missing_decision_means_no_allocation() -> None:
    pt = ShardEngine("IN-GJ", "cotton", profile="price_time")
    pt.execute([sell("s1", "A", 1000, 7000, 1)])
    res = pt.execute([buy("b1", "C", 1000, 7000, 2)], RiskVerdicts())
    assert fills(res.events) == []


def test_search_ranks_without_placing() -> None:
    q = ShardEngine("IN-GJ", "cotton", profile="quality")
    q.execute(
        [sell("s1", "A", 1000, 6900, 1, quality={"staple_length_mm": 30.0}), sell("s2", "B", 1000, 7500, 2)]
    )
    seq = q.seq
    out = q.search(buy("probe", "C", 500, 7000, 3, quality_ranges={"staple_length_mm": (29.0, 31.0)}))
    assert out["status"] == "OK"
    assert [c["order_id"] for c in out["candidates"]] == [oid(1)]
    assert q.seq == seq and ("C", "probe") not in q.results
    assert q.search(buy("probe", "C", -5, 7000, 3))["reason"] == "INVALID_QUANTITY"
