"""Pure parts of the event store: rows built from engine events, snapshot encoding, migration
discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.core.commands import AcceptProposal, CancelOrder, ConfirmReservation, PlaceOrder
from actors.core.engine import ShardEngine
from persistence import event_store as es
from persistence.migrate import discover

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


def _rows(eng, res):
    ids: dict[str, None] = {}
    for e in res.events:
        for oid in es.order_ids_of(e):
            ids[oid] = None
    return es.batch_rows(eng.shard_id, res.events, [d for d in map(eng.get_order, ids) if d])


def test_rows_for_accept_allocate_cancel():
    eng = ShardEngine("IN-GJ", "cotton", "price_time")
    res = eng.process([_place("s1", "SELL", 1700, 15000, "S"), _place("b1", "BUY", 1000, 15100, "B")])
    rows = _rows(eng, res)
    assert [r[1] for r in rows.events] == [e.seq for e in res.events]
    assert all(len(r) == len(es.EVENT_COLS) for r in rows.events)
    assert rows.last_seq == res.events[-1].seq
    assert len(rows.allocations) == 1
    alloc = dict(zip(es.ALLOCATION_COLS, rows.allocations[0], strict=True))
    assert (alloc["quantity_kg"], alloc["price"], alloc["buyer_id"], alloc["seller_id"]) == (
        1000,
        15000,
        "B",
        "S",
    )
    orders = {r[0]: dict(zip(es.ORDER_COLS, r, strict=True)) for r in rows.orders}
    assert len(orders) == 2  # each touched order once, final state
    sell = next(o for o in orders.values() if o["side"] == "SELL")
    assert (sell["open_kg"], sell["allocated_kg"], sell["last_seq"]) == (700, 1000, rows.last_seq)

    res2 = eng.process([CancelOrder(ts=T + 1, party_id="S", order_id=sell["order_id"])])
    rows2 = _rows(eng, res2)
    (o,) = rows2.orders
    d = dict(zip(es.ORDER_COLS, o, strict=True))
    assert (d["status"], d["open_kg"], d["cancelled_kg"]) == ("CANCELLED", 0, 700)


def test_rows_for_negotiation_flow():
    eng = ShardEngine("IN-GJ", "cotton", "price_time")
    eng.process([_place("s1", "SELL", 1700, 15000, "S")])
    res = eng.process([_place("b1", "BUY", 1000, 15100, "B", intent="NEGOTIATE")])
    rows = _rows(eng, res)
    assert len(rows.proposals) == 1 and not rows.allocations
    pid = rows.proposals[0][0]
    res = eng.process([AcceptProposal(ts=T + 2, party_id="B", proposal_id=pid)])
    rows = _rows(eng, res)
    assert len(rows.reservations) == 1 and rows.proposal_status == [(pid, "ACCEPTED")]
    rid = rows.reservations[0][0]
    res = eng.process([ConfirmReservation(ts=T + 3, party_id="S", reservation_id=rid)])
    rows = _rows(eng, res)
    assert len(rows.allocations) == 1
    assert (rid, "CONFIRMED", None) in rows.reservation_status


def test_snapshot_codec_roundtrip():
    eng = ShardEngine("IN-GJ", "cotton")
    eng.process([_place("s1", "SELL", 1700, 15000, "S")])
    snap = eng.snapshot()
    blob = es.encode_snapshot(snap)
    assert isinstance(blob, bytes)
    assert es.decode_snapshot(blob) == snap
    assert es.decode_snapshot(es._dumps(snap)) == snap


def test_migrations_discovered_in_order(tmp_path: Path):
    names = [m.name for m in discover()]
    assert names[0] == "0001_core" and names == sorted(names)
    (tmp_path / "0007_x.sql").write_text("SELECT 1;")
    (tmp_path / "0006_y.sql").write_text("SELECT 1;")
    (tmp_path / "notes.txt").write_text("")
    assert [m.version for m in discover(tmp_path)] == [6, 7]
    (tmp_path / "0006_z.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError):
        discover(tmp_path)
