"""Settlement reports (pure): receivables/payables ageing, open positions, realised and
mark-to-market PnL. Inputs are read-model rows (dicts); money paise, kg, prices paise/kg, ms.

- Ageing: each unpaid invoice's outstanding amount by days past its due date at ``as_of``:
  ``current`` (not yet due), ``0-30``, ``31-60``, ``61-90``, ``90+`` (the usual accounts-receivable
  buckets; "0-30" holds invoices 0 to 30 whole days past due). Receivables are the party's invoices
  as seller, payables as buyer.
- Positions: per (commodity, shard) the contracted kg still to be delivered, bought (long) and
  sold (short), and the net.
- PnL per commodity, average-cost method: delivered purchases and sales at their invoiced value
  (quality adjustments included). Realised = matched kg x (average sale price - average purchase
  price). Open kg (purchased not sold, or sold not purchased, plus undelivered contracts at their
  contract price) is marked to the reference price (the latest Agmarknet modal price of the
  commodity): long open kg x (reference - average cost), short open kg x (average sale - reference).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actors.core.posttrade.terms import DAY_MS

AGEING_BUCKETS = ("current", "0-30", "31-60", "61-90", "90+")


def bucket_of(due_at: int, as_of: int) -> str:
    """The ageing bucket of an invoice due at ``due_at`` seen at ``as_of`` (epoch ms)."""
    if as_of <= due_at:
        return "current"
    days = (as_of - due_at) // DAY_MS
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    return "61-90" if days <= 90 else "90+"


def ageing(invoices: Iterable[Mapping[str, Any]], party_id: str | None, as_of: int) -> dict[str, Any]:
    """``{"as_of", "receivables": {bucket: paise}, "payables": {...}}`` over invoice rows
    (``seller_id``, ``buyer_id``, ``amount``, ``paid``, ``due_at``); ``party_id`` None = the desk."""
    rec = dict.fromkeys(AGEING_BUCKETS, 0)
    pay = dict.fromkeys(AGEING_BUCKETS, 0)
    for i in invoices:
        out = int(i["amount"]) - int(i["paid"])
        if out <= 0:
            continue
        b = bucket_of(int(i["due_at"]), as_of)
        if party_id is None or i["seller_id"] == party_id:
            rec[b] += out
        if party_id is not None and i["buyer_id"] == party_id:
            pay[b] += out
    return {"as_of": as_of, "receivables": rec, "payables": pay}


def positions(contracts: Iterable[Mapping[str, Any]], party_id: str) -> list[dict[str, Any]]:
    """Open positions per (commodity, shard) from contract rows (``buyer_id``, ``seller_id``,
    ``commodity``, ``shard_id``, ``remaining_kg``, ``price``): long/short kg and notional."""
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for c in contracts:
        kg = int(c["remaining_kg"])
        if kg <= 0:
            continue
        key = (c["commodity"], c["shard_id"])
        row = acc.setdefault(
            key,
            {
                "commodity": key[0],
                "shard_id": key[1],
                "long_kg": 0,
                "short_kg": 0,
                "long_notional": 0,
                "short_notional": 0,
            },
        )
        if c["buyer_id"] == party_id:
            row["long_kg"] += kg
            row["long_notional"] += kg * int(c["price"])
        if c["seller_id"] == party_id:
            row["short_kg"] += kg
            row["short_notional"] += kg * int(c["price"])
    out = []
    for row in acc.values():
        row["net_kg"] = row["long_kg"] - row["short_kg"]
        out.append(row)
    return sorted(out, key=lambda r: (r["commodity"], r["shard_id"]))


def pnl(
    invoices: Iterable[Mapping[str, Any]],
    contracts: Iterable[Mapping[str, Any]],
    party_id: str,
    reference: Mapping[str, int],
    settled_kg: Mapping[str, int],
) -> list[dict[str, Any]]:
    """PnL per commodity (module docstring). ``invoices``: rows with ``commodity``,
    ``delivery_id``, ``amount``; ``settled_kg``: delivery id -> kg; ``reference``: commodity ->
    paise/kg (missing = no mark). Amounts paise (rounded down)."""
    acc: dict[str, dict[str, int]] = {}

    def row(commodity: str) -> dict[str, int]:
        return acc.setdefault(commodity, dict.fromkeys(("buy_kg", "buy_value", "sell_kg", "sell_value"), 0))

    for i in invoices:
        r = row(i["commodity"])
        kg = int(settled_kg.get(i["delivery_id"], 0))
        if i["buyer_id"] == party_id:
            r["buy_kg"] += kg
            r["buy_value"] += int(i["amount"])
        if i["seller_id"] == party_id:
            r["sell_kg"] += kg
            r["sell_value"] += int(i["amount"])
    for c in contracts:
        kg = int(c["remaining_kg"])
        if kg > 0:
            r = row(c["commodity"])
            side = "buy" if c["buyer_id"] == party_id else "sell"
            r[f"{side}_kg"] += kg
            r[f"{side}_value"] += kg * int(c["price"])
    out = []
    for commodity, r in sorted(acc.items()):
        matched = min(r["buy_kg"], r["sell_kg"])
        cost = (matched * r["buy_value"]) // r["buy_kg"] if matched else 0
        proceeds = (matched * r["sell_value"]) // r["sell_kg"] if matched else 0
        realised = proceeds - cost
        ref = reference.get(commodity)
        open_kg = r["buy_kg"] - r["sell_kg"]
        mtm = None
        if ref is not None and open_kg > 0:
            mtm = open_kg * ref - (open_kg * r["buy_value"]) // r["buy_kg"]
        elif ref is not None and open_kg < 0:
            mtm = (-open_kg * r["sell_value"]) // r["sell_kg"] + open_kg * ref
        elif ref is not None:
            mtm = 0
        out.append(
            {
                "commodity": commodity,
                **r,
                "realised": realised,
                "open_kg": open_kg,
                "reference_price": ref,
                "mark_to_market": mtm,
            }
        )
    return out
