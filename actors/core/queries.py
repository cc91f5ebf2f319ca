"""The read side of a shard: best bid/ask, public depth, a party's open orders, one order, a ranked
search for a hypothetical order, and operator counters. Nothing here records events or changes
state. Prices paise/kg, quantities kg.
"""

from __future__ import annotations

from typing import Any

from actors.core import validation as v
from actors.core.commands import PlaceOrder
from actors.core.orders import Order
from actors.core.state import ShardState
from actors.core.visibility import visible_to

MAX_SEARCH_RESULTS = 200


def _anonymous_view(o: Order) -> bool:
    """Aggregated market data (top, depth) has no viewer: only what anyone may see counts."""
    return visible_to(o.visibility, o.allow_list, o.party_id, None)


class Queries(ShardState):
    """``best_bid_ask``, ``depth``, ``open_orders``, ``get_order``, ``search``, ``stats``."""

    def best_bid_ask(self) -> dict[str, Any]:
        """``{"shard_id", "seq", "bid", "bid_kg", "ask", "ask_kg"}``: best PUBLIC bid/ask price
        (paise/kg) and the open kg at it, or None / 0 when a side has no public order."""
        out: dict[str, Any] = {"shard_id": self.shard_id, "seq": self.seq}
        for name, side in (("bid", self.bids), ("ask", self.asks)):
            out[name] = None
            out[f"{name}_kg"] = 0
            for price, lvl in side.iter_levels():
                kg = sum(o.open_kg for o in lvl.values() if _anonymous_view(o))
                if kg:
                    out[name] = price
                    out[f"{name}_kg"] = kg
                    break
        return out

    def depth(self, levels: int = 10) -> dict[str, Any]:
        """Aggregated public depth: ``{"bids": [[price, kg, orders], ...], "asks": [...]}`` best first,
        at most ``levels`` price levels per side. Raises ValueError when ``levels`` < 1."""
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        out: dict[str, Any] = {"shard_id": self.shard_id, "seq": self.seq}
        for name, side in (("bids", self.bids), ("asks", self.asks)):
            rows: list[list[int]] = []
            for price, lvl in side.iter_levels():
                pub = [o for o in lvl.values() if _anonymous_view(o)]
                if pub:
                    rows.append([price, sum(o.open_kg for o in pub), len(pub)])
                    if len(rows) >= levels:
                        break
            out[name] = rows
        return out

    def open_orders(self, party_id: str) -> list[dict[str, Any]]:
        """A party's orders with open or reserved quantity, oldest first (order dicts)."""
        return [o.to_dict() for o in self.orders.values() if o.party_id == party_id and o.is_live]

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order dict (:meth:`actors.core.orders.Order.to_dict`) or None when unknown or gone
        from memory (docs/matching.md, "Retention"); an order the last batch evicted is still
        answered, so the host can record the final state of every order the batch touched."""
        o = self.orders.get(order_id) or self._batch_evicted.get(order_id)
        return o.to_dict() if o is not None else None

    def search(self, query: PlaceOrder, limit: int = 20) -> dict[str, Any]:
        """Ranked candidates for a hypothetical order, without placing anything or recording events.

        Returns ``{"status": "OK", "candidates": [...]}`` (each with order id, price, open kg, quality,
        location, score and breakdown; counterparties are not disclosed; at most
        ``MAX_SEARCH_RESULTS``) or a REJECTED status with a reason code for an invalid query.
        """
        problem = v.check_place(query, self._spec_of(query.commodity), self.region, self.commodity)
        if problem is not None:
            return {"status": "REJECTED", "reason": problem[0], "detail": problem[1], "candidates": []}
        taker = self._order_from_command(query, "search", self.seq + 1, None)
        n = max(0, min(int(limit), MAX_SEARCH_RESULTS))
        cands: list[dict[str, Any]] = []
        for f in self._ranked(taker, decide=False):
            if len(cands) >= n:
                break
            r = f.resting
            cands.append(
                {
                    "order_id": r.order_id,
                    "side": r.side,
                    "price": r.price,
                    "open_kg": r.open_kg,
                    "quality": dict(r.quality) if r.side == "SELL" else {},
                    "quality_ranges": {k: list(x) for k, x in r.quality_ranges.items()},
                    "region": r.region,
                    "city": r.city,
                    "district": r.district,
                    "min_order_kg": r.min_order_kg,
                    "score": f.score,
                    "breakdown": f.breakdown,
                }
            )
        return {"status": "OK", "candidates": cands}

    def stats(self) -> dict[str, Any]:
        """Counters for operators: seq, orders resting per side, live orders, active reservations."""
        return {
            "shard_id": self.shard_id,
            "seq": self.seq,
            "bids": len(self.bids),
            "asks": len(self.asks),
            "book_size": len(self.bids) + len(self.asks),
            "orders_total": len(self.orders),
            "active_reservations": sum(1 for r in self.reservations.values() if r["status"] == "ACTIVE"),
        }
