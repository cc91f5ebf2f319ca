"""Projection rows from events (persistence/projections.py): a second engine fed with the events of
a live one yields the orders, allocations, proposals, reservations and client_orders rows."""

from __future__ import annotations

import json

from actors.core.commands import AcceptProposal, CancelOrder, ConfirmReservation, PlaceOrder
from actors.core.engine import ShardEngine
from persistence import projections as pj

T = 1_767_225_600_000


def _place(coid, side, qty, price, party, intent=None):
    return PlaceOrder(
        ts=T,
        party_id=party,
        client_order_id=coid,
        side=side,
        commodity="cotton",
        region="IN-GJ",
        quantity_kg=qty,
        price=price,
        lat=22.3,
        lon=70.8,
        intent=intent,
    )


class Pair:
    """A live engine and a projector engine fed with its events."""

    def __init__(self) -> None:
        self.live = ShardEngine("IN-GJ", "cotton", "price_time")
        self.proj = ShardEngine("IN-GJ", "cotton", "price_time")

    def run(self, *cmds):
        res = self.live.process(list(cmds))
        return res, pj.project_page(self.proj, res.events)


def _by_id(cols, rows):
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def test_accept_allocate_cancel_rows():
    p = Pair()
    res, rows = p.run(_place("s1", "SELL", 1700, 15000, "S"), _place("b1", "BUY", 1000, 15100, "B"))
    assert rows.last_seq == res.events[-1].seq == 3
    (alloc,) = _by_id(pj.ALLOCATION_COLS, rows.allocations).values()
    assert (alloc["quantity_kg"], alloc["price"], alloc["buyer_id"], alloc["seller_id"], alloc["seq"]) == (
        1000,
        15000,
        "B",
        "S",
        3,
    )
    orders = _by_id(pj.ORDER_COLS, rows.orders)
    assert len(orders) == 2  # each touched order once, final state
    sell = next(o for o in orders.values() if o["side"] == "SELL")
    assert (sell["open_kg"], sell["allocated_kg"], sell["status"], sell["last_seq"]) == (
        700,
        1000,
        "PARTIALLY_FILLED",
        3,
    )
    assert json.loads(sell["doc"]) == p.live.get_order(sell["order_id"])
    # the place results: the buyer's carries its allocation, as the live engine answered it
    co = {(r[0], r[1]): dict(zip(pj.CLIENT_ORDER_COLS, r, strict=True)) for r in rows.client_orders}
    assert set(co) == {("S", "s1"), ("B", "b1")}
    assert json.loads(co[("B", "b1")]["result"]) == json.loads(pj.dumps(res.results[1]))
    assert co[("B", "b1")]["seq"] == 3 and co[("S", "s1")]["status"] == "ACCEPTED"

    res2, rows2 = p.run(CancelOrder(ts=T + 1, party_id="S", order_id=sell["order_id"]))
    (o,) = _by_id(pj.ORDER_COLS, rows2.orders).values()
    assert (o["status"], o["open_kg"], o["cancelled_kg"], o["last_seq"]) == ("CANCELLED", 0, 700, 4)
    assert not rows2.client_orders  # a cancel is not a place


def test_rejected_place_has_a_client_order_row_and_no_order():
    p = Pair()
    _res, rows = p.run(_place("bad", "SELL", 0, 15000, "S"))
    assert rows.orders == [] and rows.allocations == []
    ((party, coid, order_id, _sid, seq, status, result),) = rows.client_orders
    assert (party, coid, order_id, seq, status) == ("S", "bad", None, 1, "REJECTED")
    assert json.loads(result)["reason"] == p.live.results[("S", "bad")]["reason"]


def test_negotiation_rows():
    p = Pair()
    p.run(_place("s1", "SELL", 1700, 15000, "S"))
    _res, rows = p.run(_place("b1", "BUY", 1000, 15100, "B", intent="NEGOTIATE"))
    assert len(rows.proposals) == 1 and not rows.allocations
    pid = rows.proposals[0][0]
    _res, rows = p.run(AcceptProposal(ts=T + 2, party_id="B", proposal_id=pid))
    assert len(rows.reservations) == 1 and rows.proposal_status == {pid: "ACCEPTED"}
    rid = rows.reservations[0][0]
    _res, rows = p.run(ConfirmReservation(ts=T + 3, party_id="S", reservation_id=rid))
    assert len(rows.allocations) == 1
    assert rows.reservation_status == {rid: ("CONFIRMED", None)}
    assert {r[0]: r[14] for r in rows.orders} == {
        o: p.live.get_order(o)["status"] for o in (rows.allocations[0][4], rows.allocations[0][5])
    }


def test_one_page_equals_many_pages():
    live = ShardEngine("IN-GJ", "cotton", "price_time")
    events = []
    for i in range(30):
        side = "SELL" if i % 2 else "BUY"
        events += live.process(
            [_place(f"c{i}", side, 170 * (1 + i % 5), 15000 + (i % 7) * 10, f"P{i % 4}")]
        ).events
    one = pj.project_page(ShardEngine("IN-GJ", "cotton", "price_time"), events)
    eng = ShardEngine("IN-GJ", "cotton", "price_time")
    merged: dict[str, dict] = {"orders": {}, "allocations": {}, "client_orders": {}}
    for k in range(0, len(events), 7):
        page = pj.project_page(eng, events[k : k + 7])
        for name in merged:
            for r in getattr(page, name):
                merged[name][(r[0], r[1]) if name == "client_orders" else r[0]] = r
    assert {r[0]: r for r in one.orders} == merged["orders"]
    assert {r[0]: r for r in one.allocations} == merged["allocations"]
    assert {(r[0], r[1]): r[6] for r in one.client_orders} == {
        k: r[6] for k, r in merged["client_orders"].items()
    }
