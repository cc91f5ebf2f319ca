"""Command builders for the core tests: a Gujarat cotton shard near Rajkot (22.30 N, 70.80 E)."""

from __future__ import annotations

from typing import Any

from actors.core.commands import PlaceOrder

REGION = "IN-GJ"
RAJKOT = (22.30, 70.80)
AHMEDABAD = (23.02, 72.57)  # about 190 km from Rajkot


def _place(side: str, coid: str, party: str, qty: int, price: int, ts: int, **kw: Any) -> PlaceOrder:
    lat, lon = kw.pop("loc", RAJKOT)
    return PlaceOrder(
        ts=ts,
        party_id=party,
        client_order_id=coid,
        side=side,
        commodity="cotton",
        region=REGION,
        quantity_kg=qty,
        price=price,
        lat=lat,
        lon=lon,
        **kw,
    )


def sell(coid: str, party: str, qty: int, price: int, ts: int, **kw: Any) -> PlaceOrder:
    """An availability (kg, paise/kg, epoch ms) at Rajkot unless ``loc=(lat, lon)`` is given."""
    return _place("SELL", coid, party, qty, price, ts, **kw)


def buy(coid: str, party: str, qty: int, price: int, ts: int, **kw: Any) -> PlaceOrder:
    """A requirement (kg, max paise/kg, epoch ms) at Rajkot unless ``loc=(lat, lon)`` is given."""
    return _place("BUY", coid, party, qty, price, ts, **kw)


def oid(seq: int) -> str:
    return f"O-{REGION}.cotton-{seq}"


def fills(events: list[Any]) -> list[tuple[str, str, int, int]]:
    """(buy_order_id, sell_order_id, kg, price) of every allocation, in order."""
    return [
        (e.payload.buy_order_id, e.payload.sell_order_id, e.payload.quantity_kg, e.payload.price)
        for e in events
        if e.type in ("ALLOCATED", "CONFIRMED")
    ]
