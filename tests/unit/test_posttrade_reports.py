"""Settlement reports: ageing buckets, open positions, realised and mark-to-market PnL."""

from __future__ import annotations

from actors.core.posttrade.reports import ageing, bucket_of, pnl, positions
from actors.core.posttrade.terms import DAY_MS


def test_ageing_buckets_by_days_past_due() -> None:
    due = 100 * DAY_MS
    assert [bucket_of(due, due + d * DAY_MS) for d in (0, 1, 30, 31, 60, 61, 90, 91)] == [
        "current", "0-30", "0-30", "31-60", "31-60", "61-90", "61-90", "90+"
    ]  # fmt: skip
    inv = [
        {"seller_id": "S", "buyer_id": "B", "amount": 1000, "paid": 400, "due_at": due},
        {"seller_id": "S", "buyer_id": "C", "amount": 500, "paid": 500, "due_at": due},
        {"seller_id": "B", "buyer_id": "S", "amount": 300, "paid": 0, "due_at": due - 50 * DAY_MS},
    ]
    out = ageing(inv, "S", due + 10 * DAY_MS)
    assert out["receivables"] == {"current": 0, "0-30": 600, "31-60": 0, "61-90": 0, "90+": 0}
    assert out["payables"] == {"current": 0, "0-30": 0, "31-60": 300, "61-90": 0, "90+": 0}  # 60 days


def test_positions_long_short_net() -> None:
    keys = ("buyer_id", "seller_id", "commodity", "shard_id", "remaining_kg", "price")
    rows = [
        dict(zip(keys, ("T", "S", "cotton", "IN-GJ.cotton", 1700, 16000), strict=True)),
        dict(zip(keys, ("B", "T", "cotton", "IN-GJ.cotton", 700, 16500), strict=True)),
        dict(zip(keys, ("T", "S", "soybean", "IN-MP.soybean", 0, 4500), strict=True)),
    ]
    (p,) = positions(rows, "T")
    assert (p["long_kg"], p["short_kg"], p["net_kg"]) == (1700, 700, 1000)
    assert (p["long_notional"], p["short_notional"]) == (1700 * 16000, 700 * 16500)


def test_pnl_average_cost_realised_and_marked_to_agmarknet() -> None:
    keys = ("buyer_id", "seller_id", "commodity", "delivery_id", "amount")
    invoices = [
        dict(zip(keys, ("T", "S", "cotton", "d1", 1000 * 15000), strict=True)),
        dict(zip(keys, ("B", "T", "cotton", "d2", 600 * 16000), strict=True)),
    ]
    kg = {"d1": 1000, "d2": 600}
    (row,) = pnl(invoices, [], "T", {"cotton": 15500}, kg)
    assert row["realised"] == 600 * (16000 - 15000)
    assert row["open_kg"] == 400 and row["mark_to_market"] == 400 * (15500 - 15000)
    (short,) = pnl(invoices[1:], [], "T", {"cotton": 15500}, kg)
    assert short["open_kg"] == -600 and short["mark_to_market"] == 600 * (16000 - 15500)
    assert pnl(invoices, [], "T", {}, kg)[0]["mark_to_market"] is None
