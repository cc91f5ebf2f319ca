"""The projector of a shard: :meth:`Projector.apply` is the ONLY code that changes the state (with the
market-control events' ``_ap_*`` of :mod:`actors.core.market_controls`, its base), on the
live path (right after an event is emitted) and in recovery alike, so replaying the log rebuilds
exactly the live state. Also the snapshot of that state and the restore from it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from actors.core import orders as st
from actors.core.events import (
    ALLOCATED,
    AMENDED,
    CANCELLED,
    COMMAND_REJECTED,
    CONFIRMED,
    EXPIRED,
    KILL_SWITCH,
    MARKET_REFERENCE,
    ORDER_ACCEPTED,
    ORDER_REJECTED,
    PRICE_BAND_SET,
    PROPOSAL_REJECTED,
    PROPOSED,
    RELEASED,
    RESERVED,
    SHARD_HALTED,
    SHARD_RESUMED,
    Allocated,
    Amended,
    Event,
    OrderAccepted,
    OrderRejected,
    Proposed,
    Released,
    Reserved,
)
from actors.core.market_controls import MarketControls
from actors.core.orders import Order
from actors.core.placing import near_key, place_result
from actors.core.retention import Retention
from actors.core.state import CLOSED_RETENTION


class Projector(MarketControls, Retention):
    """``apply(event)``, ``snapshot()`` and ``from_snapshot(snap)``."""

    def apply(self, event: Event) -> None:
        """Apply one recorded event to the state. Used live (after emitting) and in recovery.

        Raises:
            ValueError: the event's seq is not the next one (a gap or a replayed event).
        """
        if event.seq != self.seq + 1:
            raise ValueError(f"shard {self.shard_id}: event seq {event.seq} follows {self.seq}")
        self.seq = event.seq
        if event.ts > self.clock:
            self.clock = event.ts
        _APPLY[event.type](self, event)
        if len(self._closed) > self._trim_at:
            self._trim()

    def _ap_accepted(self, ev: Event) -> None:
        p: OrderAccepted = ev.payload
        o = self._pending
        nkey = self._pending_near
        self._pending = self._pending_near = None
        if o is None or o.order_id != p.order.order_id:
            o = p.order.copy()  # the event's copy stays as recorded
            nkey = None
        oid = o.order_id
        self.orders[oid] = o
        (self.bids if o.side == "BUY" else self.asks).add(o)
        if o.valid_until is not None:
            heapq.heappush(self._expiries, (o.valid_until, oid))
        res = place_result(oid, None, "ACCEPTED", o.client_order_id, [ev.seq])
        if o.near_duplicate_of is not None:
            res["near_duplicate_of"] = o.near_duplicate_of
        self.results[(o.party_id, o.client_order_id)] = res
        if self.spec.flag_near_duplicates:
            if nkey is None:
                nkey = near_key(o.party_id, o.side, o.price, o.quantity_kg, o.lat, o.lon)
            self.near_dups[nkey] = (oid, o.created_ts)
            if len(self.near_dups) >= self._near_sweep_at:
                self._near_recorded()

    def _ap_rejected(self, ev: Event) -> None:
        p: OrderRejected = ev.payload
        if p.party_id is not None and p.client_order_id is not None:
            key = (p.party_id, p.client_order_id)
            self.results[key] = place_result(None, p, "REJECTED", None, [ev.seq])
            self._rejection_closed(key, ev.seq)

    def _ap_noop(self, ev: Event) -> None:
        return None

    def _take(self, o: Order, qty: int, from_reserved: bool, ts: int) -> None:
        if from_reserved:
            o.reserved_kg -= qty
        else:
            o.open_kg -= qty
            if o.open_kg == 0:
                (self.bids if o.side == "BUY" else self.asks).remove(o)
        o.allocated_kg += qty
        o.updated_ts = ts
        o.refresh_status()
        if o.open_kg == 0 and o.reserved_kg == 0:
            self._order_closed(o)

    def _taker_result(self, ev: Event, p: Allocated | Proposed, key: str) -> None:
        """Record a fill of a place command in that command's (idempotent) result."""
        taker = self.orders[p.taker_order_id]
        res = self.results[(taker.party_id, taker.client_order_id)]
        res[key].append(p.to_dict())
        res["seqs"].append(ev.seq)

    def _ap_allocated(self, ev: Event) -> None:
        p: Allocated = ev.payload
        qty = p.quantity_kg
        from_reserved = p.reservation_id is not None
        orders = self.orders
        self._take(orders[p.buy_order_id], qty, from_reserved, ev.ts)
        self._take(orders[p.sell_order_id], qty, from_reserved, ev.ts)
        self._record_trade(ev.ts, p.price)
        if p.taker_command == "place":
            self._taker_result(ev, p, "allocations")

    def _ap_confirmed(self, ev: Event) -> None:
        self._ap_allocated(ev)
        r = self.reservations[ev.payload.reservation_id]
        r["status"] = "CONFIRMED"
        r["allocation_id"] = ev.payload.allocation_id

    def _ap_proposed(self, ev: Event) -> None:
        p: Proposed = ev.payload
        prop = p.to_dict()
        prop["status"] = "OPEN"
        prop["ts"] = ev.ts
        self.proposals[p.proposal_id] = prop
        self._link((p.buy_order_id, p.sell_order_id), p.proposal_id)
        if p.taker_command == "place":
            self._taker_result(ev, p, "proposals")

    def _ap_proposal_rejected(self, ev: Event) -> None:
        self.proposals[ev.payload.proposal_id]["status"] = "REJECTED"

    def _ap_reserved(self, ev: Event) -> None:
        p: Reserved = ev.payload
        q = p.quantity_kg
        for oid in (p.buy_order_id, p.sell_order_id):
            o = self.orders[oid]
            o.open_kg -= q
            o.reserved_kg += q
            if o.open_kg == 0:
                self.side_of(o).remove(o)
            o.updated_ts = ev.ts
            o.refresh_status()
        r = p.to_dict()
        r["status"] = "ACTIVE"
        self.reservations[p.reservation_id] = r
        self._link((p.buy_order_id, p.sell_order_id), p.reservation_id)
        self.proposals[p.proposal_id]["status"] = "ACCEPTED"
        heapq.heappush(self._holds, (p.hold_until, p.reservation_id))

    def _ap_released(self, ev: Event) -> None:
        p: Released = ev.payload
        r = self.reservations[p.reservation_id]
        r["status"] = "RELEASED"
        r["release_reason"] = p.reason
        q = r["quantity_kg"]
        for oid in (r["buy_order_id"], r["sell_order_id"]):
            o = self.orders[oid]
            o.reserved_kg -= q
            if o.status == st.CANCELLED:
                o.cancelled_kg += q
                self._order_closed(o)
            elif o.status == st.EXPIRED:
                o.expired_kg += q
                self._order_closed(o)
            else:
                was_resting = o.open_kg > 0
                o.open_kg += q
                if not was_resting:
                    self.side_of(o).add_by_priority(o)
                o.refresh_status()
            o.updated_ts = ev.ts

    def _close_open(self, ev: Event, status: str) -> Order:
        """Take the order out of the book and close it with ``status`` (the caller moves the kg)."""
        o = self.orders[ev.payload.order_id]
        (self.bids if o.side == "BUY" else self.asks).remove(o)
        o.status = status
        o.updated_ts = ev.ts
        return o

    def _ap_cancelled(self, ev: Event) -> None:
        o = self._close_open(ev, st.CANCELLED)
        kg = ev.payload.cancelled_kg
        o.open_kg -= kg
        o.cancelled_kg += kg
        self._order_closed(o)

    def _ap_expired(self, ev: Event) -> None:
        o = self._close_open(ev, st.EXPIRED)
        kg = ev.payload.expired_kg
        o.open_kg -= kg
        o.expired_kg += kg
        self._order_closed(o)

    def _ap_amended(self, ev: Event) -> None:
        p: Amended = ev.payload
        o = self.orders[p.order_id]
        delta_open = p.open_kg - o.open_kg
        if p.priority_lost:
            side = self.side_of(o)
            side.remove(o)
            o.price = p.price
            o.priority = p.priority
            o.open_kg = p.open_kg
            side.add(o)
        else:
            o.open_kg = p.open_kg
        o.quantity_kg += delta_open
        o.updated_ts = ev.ts

    # ---- snapshot

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a JSON-serialisable dict (restorable with :meth:`from_snapshot`)."""
        return {
            "shard_id": self.shard_id,
            "region": self.region,
            "commodity": self.commodity,
            "profile": self.profile,
            "seq": self.seq,
            "clock": self.clock,
            "orders": [o.to_dict() for o in self.orders.values()],
            "proposals": [dict(p) for p in self.proposals.values()],
            "reservations": [dict(r) for r in self.reservations.values()],
            "results": [[k[0], k[1], r] for k, r in self.results.items()],
            "near_dups": [[list(k), val[0], val[1]] for k, val in self.near_dups.items()],
            "market": self.market_snapshot(),
            "retention": self.retention_snapshot(),
        }

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> Any:
        """Rebuild an engine (of this class) from :meth:`snapshot` output.

        Raises:
            KeyError / msgspec.ValidationError: a malformed snapshot.
        """
        keep = snap.get("retention", {}).get("closed_retention", CLOSED_RETENTION)
        eng = cls(snap["region"], snap["commodity"], snap["profile"], keep)
        eng.seq = snap["seq"]
        eng.clock = snap["clock"]
        live: list[Order] = []
        for d in snap["orders"]:
            o = Order.from_dict(d)
            eng.orders[o.order_id] = o
            if o.status in (st.OPEN, st.PARTIALLY_FILLED):
                if o.open_kg > 0:
                    live.append(o)
                if o.valid_until is not None:
                    heapq.heappush(eng._expiries, (o.valid_until, o.order_id))
        for o in sorted(live, key=lambda x: x.priority):
            eng.side_of(o).add(o)
        eng.proposals = {p["proposal_id"]: dict(p) for p in snap["proposals"]}
        eng.reservations = {r["reservation_id"]: dict(r) for r in snap["reservations"]}
        for r in eng.reservations.values():
            if r["status"] == "ACTIVE":
                heapq.heappush(eng._holds, (r["hold_until"], r["reservation_id"]))
        eng.results = {(k0, k1): r for k0, k1, r in snap["results"]}
        eng.near_dups = {tuple(k): (oid, ts) for k, oid, ts in snap["near_dups"]}
        eng.restore_market(snap.get("market"))
        eng.restore_retention(snap.get("retention", {}))
        return eng


_APPLY: dict[str, Callable[[Any, Event], None]] = {
    ORDER_ACCEPTED: Projector._ap_accepted,
    ORDER_REJECTED: Projector._ap_rejected,
    COMMAND_REJECTED: Projector._ap_noop,
    ALLOCATED: Projector._ap_allocated,
    CONFIRMED: Projector._ap_confirmed,
    PROPOSED: Projector._ap_proposed,
    PROPOSAL_REJECTED: Projector._ap_proposal_rejected,
    RESERVED: Projector._ap_reserved,
    RELEASED: Projector._ap_released,
    CANCELLED: Projector._ap_cancelled,
    EXPIRED: Projector._ap_expired,
    AMENDED: Projector._ap_amended,
    SHARD_HALTED: MarketControls._ap_halted,
    SHARD_RESUMED: MarketControls._ap_resumed,
    PRICE_BAND_SET: MarketControls._ap_band_set,
    MARKET_REFERENCE: MarketControls._ap_reference,
    KILL_SWITCH: Projector._ap_noop,
}
