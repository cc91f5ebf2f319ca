"""Order commands of a shard: place, cancel, amend, rejections, and the clock (expiry of orders and
reservation holds). Each records events through ``_emit``; state changes only when they are applied.
"""

from __future__ import annotations

import heapq
from typing import Any

from msgspec.structs import replace

from actors.core import orders as st
from actors.core import validation as v
from actors.core.commands import AmendOrder, CancelOrder, PlaceOrder, command_kind
from actors.core.commodities import CommoditySpec, canonical_commodity, get_spec
from actors.core.events import (
    ALLOCATED,
    AMENDED,
    CANCELLED,
    COMMAND_REJECTED,
    EXPIRED,
    ORDER_ACCEPTED,
    ORDER_REJECTED,
    PROPOSED,
    RELEASED,
    Amended,
    Cancelled,
    CommandRejected,
    Expired,
    OrderAccepted,
    OrderRejected,
    Released,
)
from actors.core.orders import Order
from actors.core.place_check import place_ok
from actors.core.state import ShardState

# An order with every optional field at its default (see Placing._order_from_command).
_TEMPLATE = Order(
    order_id="",
    party_id="",
    client_order_id="",
    side="SELL",
    commodity="",
    region="",
    quantity_kg=0,
    open_kg=0,
    price=0,
    lat=0.0,
    lon=0.0,
    created_ts=0,
    updated_ts=0,
    priority=0,
)


def batch_ref(cmd: PlaceOrder) -> str:
    """Order reference of an order placed in the current batch, used before it has an id."""
    return f"new:{cmd.party_id}\x1f{cmd.client_order_id}"


def near_key(party: str, side: str, price: int, qty: int, lat: float, lon: float) -> tuple[Any, ...]:
    """Key of the near-duplicate index: same party, side, price, kg and place (4 decimals)."""
    return (party, side, price, qty, round(float(lat), 4), round(float(lon), 4))


def place_result(
    order_id: str | None,
    rejection: OrderRejected | None,
    status: str,
    coid: str | None = None,
    seqs: list[int] | None = None,
) -> dict[str, Any]:
    """The result dict of a place command (see docs/contracts.md); lists filled by the projector."""
    return {
        "command": "place",
        "status": status,
        "order_id": order_id,
        "client_order_id": coid if rejection is None else rejection.client_order_id,
        "reason": None if rejection is None else rejection.reason,
        "detail": None if rejection is None else rejection.detail,
        "allocations": [],
        "proposals": [],
        "seqs": [] if seqs is None else seqs,
        "duplicate": False,
    }


def released(r: dict[str, Any], reason: str) -> Released:
    """The RELEASED payload of reservation ``r`` (a reservations dict) with ``reason``."""
    return Released(
        reservation_id=r["reservation_id"],
        buy_order_id=r["buy_order_id"],
        sell_order_id=r["sell_order_id"],
        buyer_id=r["buyer_id"],
        seller_id=r["seller_id"],
        quantity_kg=r["quantity_kg"],
        price=r["price"],
        reason=reason,
    )


class Placing(ShardState):
    """Place / cancel / amend, rejections and the clock."""

    # ---- rejections

    def _reject_place(self, cmd: Any, reason: str, detail: str) -> dict[str, Any]:
        party = getattr(cmd, "party_id", None)
        coid = getattr(cmd, "client_order_id", None)
        payload = OrderRejected(
            party if v.valid_id(party) else None, coid if v.valid_id(coid) else None, reason, detail
        )
        self._emit(ORDER_REJECTED, self._event_ts(getattr(cmd, "ts", None)), payload)
        res = None
        if payload.party_id is not None and payload.client_order_id is not None:
            res = self.results.get((payload.party_id, payload.client_order_id))
        return dict(res) if res is not None else place_result(None, payload, "REJECTED")

    def _reject_command(self, cmd: Any, reason: str, detail: str) -> dict[str, Any]:
        kind = command_kind(cmd)
        party = getattr(cmd, "party_id", None)
        target = None
        for attr in ("order_id", "proposal_id", "reservation_id"):
            val = getattr(cmd, attr, None)
            if val is not None:
                target = val if v.valid_id(val) else None
                break
        payload = CommandRejected(kind, party if v.valid_id(party) else None, target, reason, detail)
        self._emit(COMMAND_REJECTED, self._event_ts(getattr(cmd, "ts", None)), payload)
        return {"command": kind, "status": "REJECTED", "reason": reason, "detail": detail, "target": target}

    def _event_ts(self, ts: Any) -> int:
        return int(ts) if v.check_ts(ts) is None else self.clock

    # ---- time

    def _advance(self, ts: int) -> None:
        """Expire orders and holds due at ``max(clock, ts)``.

        An order due to expire that still has open or reserved kg closes (EXPIRED with its open kg,
        possibly 0); its reservations stay until confirmed or released, and released kg then
        counts as expired."""
        now = ts if ts > self.clock else self.clock
        if self.halted_until is not None:
            self._auto_resume(now)
        exp = self._expiries
        while exp and exp[0][0] <= now:
            due, oid = heapq.heappop(exp)
            o = self.orders.get(oid)
            if (
                o is not None
                and o.valid_until == due
                and o.status in (st.OPEN, st.PARTIALLY_FILLED)
                and o.is_live
            ):
                self._emit(EXPIRED, due, Expired(oid, o.open_kg))
        holds = self._holds
        while holds and holds[0][0] <= now:
            due, rid = heapq.heappop(holds)
            r = self.reservations.get(rid)
            if r is not None and r["status"] == "ACTIVE" and r["hold_until"] == due:
                self._emit(RELEASED, due, released(r, "HOLD_EXPIRED"))

    # ---- place

    def _spec_of(self, commodity: Any) -> CommoditySpec | None:
        if commodity == self.commodity:
            return self.spec
        canon = canonical_commodity(commodity) if isinstance(commodity, str) else None
        return get_spec(canon) if canon else None

    def _place(self, cmd: PlaceOrder) -> dict[str, Any]:
        key = (cmd.party_id, cmd.client_order_id)
        try:
            prior = self.results.get(key)
            if prior is None and self._remembered:
                prior = self._remembered.get(key)
        except TypeError:
            prior = None
        if prior is not None:
            res = dict(prior)
            res["duplicate"] = True
            return res
        spec = self.spec
        if not (self._validated.get(id(cmd)) is cmd or place_ok(cmd, spec, self.region)):
            problem = v.check_place(cmd, self._spec_of(cmd.commodity), self.region, self.commodity)
            if problem is not None:
                return self._reject_place(cmd, *problem)
        if self.halted:
            return self._reject_place(cmd, v.SHARD_HALTED, self._halt_detail())
        if self.band is not None and self._out_of_band(cmd.price):
            return self._reject_place(cmd, v.PRICE_OUT_OF_BAND, self._band_detail(cmd.price))
        seq = self.seq + 1
        order_id = f"O-{self.shard_id}-{seq}"
        near: str | None = None
        nkey: tuple[Any, ...] | None = None
        if spec.flag_near_duplicates:
            side = "BUY" if cmd.side == "BUY" else "SELL"
            nkey = near_key(cmd.party_id, side, cmd.price, cmd.quantity_kg, cmd.lat, cmd.lon)
            prev = self.near_dups.get(nkey)
            if prev is not None and 0 <= cmd.ts - prev[1] <= spec.near_duplicate_window_ms:
                near = prev[0]
        order = self._order_from_command(cmd, order_id, seq, near)
        self._pending = order
        self._pending_near = nkey
        self._emit(ORDER_ACCEPTED, cmd.ts, OrderAccepted(order.copy()))
        if not self._verdicts.pass_all or self._verdicts.decisions:
            self._refs[order_id] = batch_ref(cmd)
        if self._crosses(order):
            self._match(order, cmd.ts, "place")
        return dict(self.results[key])

    def _order_from_command(self, cmd: PlaceOrder, order_id: str, seq: int, near_dup: str | None) -> Order:
        """A new :class:`Order` for a validated place command (``seq`` sets its time priority).
        Enum members become their plain string values, quality values floats; the fields a plain
        order leaves at their defaults are taken from one template (empty dicts are never mutated,
        so orders may share them)."""
        side = "BUY" if cmd.side == "BUY" else "SELL"
        ts = cmd.ts
        o = replace(
            _TEMPLATE,
            order_id=order_id,
            party_id=cmd.party_id,
            client_order_id=cmd.client_order_id,
            side=side,
            commodity=self.commodity,
            region=cmd.region,
            quantity_kg=cmd.quantity_kg,
            open_kg=cmd.quantity_kg,
            price=cmd.price,
            lat=float(cmd.lat),
            lon=float(cmd.lon),
            min_order_kg=cmd.min_order_kg,
            allow_partial=cmd.allow_partial,
            valid_until=cmd.valid_until,
            intent=None if side == "SELL" else "NEGOTIATE" if cmd.intent == "NEGOTIATE" else "DIRECT_BUY",
            created_ts=ts,
            updated_ts=ts,
            priority=seq,
            near_duplicate_of=near_dup,
        )
        if cmd.quality:
            o.quality = {k: float(x) for k, x in cmd.quality.items()}
        if cmd.quality_ranges:
            o.quality_ranges = {k: (float(r[0]), float(r[1])) for k, r in cmd.quality_ranges.items()}
        if cmd.quality_target:
            o.quality_target = {k: float(x) for k, x in cmd.quality_target.items()}
        if cmd.city is not None or cmd.district is not None:
            o.city = cmd.city
            o.district = cmd.district
        if cmd.max_distance_km is not None:
            o.max_distance_km = float(cmd.max_distance_km)
        if cmd.visibility != "PUBLIC":
            o.visibility = "PRIVATE"
        if cmd.allow_list:
            o.allow_list = tuple(sorted(set(cmd.allow_list)))
        if cmd.linked_parties:
            o.linked_parties = tuple(sorted(set(cmd.linked_parties)))
        if cmd.profile is not None:
            o.profile = str(cmd.profile)
        return o

    # ---- cancel / amend

    def _owned_live_order(self, cmd: Any) -> Order | dict[str, Any]:
        if not v.valid_id(getattr(cmd, "party_id", None)):
            return self._reject_command(cmd, v.INVALID_PARTY, "party_id must be a non-empty string")
        oid = getattr(cmd, "order_id", None)
        o = self.orders.get(oid) if isinstance(oid, str) else None
        if o is None or o.party_id != cmd.party_id:
            return self._reject_command(cmd, v.UNKNOWN_ORDER, "no such order of this party")
        if o.status in (st.CANCELLED, st.EXPIRED, st.FILLED) or o.open_kg == 0:
            return self._reject_command(cmd, v.ORDER_CLOSED, f"order has no open quantity ({o.status})")
        return o

    def _cancel(self, cmd: CancelOrder) -> dict[str, Any]:
        o = self._owned_live_order(cmd)
        if isinstance(o, dict):
            return o
        kg = o.open_kg
        self._emit(CANCELLED, cmd.ts, Cancelled(o.order_id, kg))
        return {"command": "cancel", "status": "OK", "order_id": o.order_id, "cancelled_kg": kg}

    def _amend(self, cmd: AmendOrder) -> dict[str, Any]:
        o = self._owned_live_order(cmd)
        if isinstance(o, dict):
            return o
        if cmd.quantity_kg is None and cmd.price is None:
            return self._reject_command(cmd, v.INVALID_AMEND, "give a new quantity_kg and/or price")
        price = o.price if cmd.price is None else cmd.price
        qty = o.quantity_kg if cmd.quantity_kg is None else cmd.quantity_kg
        if (p := v.check_price(price)) is not None or (p := v.check_quantity(qty)) is not None:
            return self._reject_command(cmd, *p)
        done = o.quantity_kg - o.open_kg
        new_open = qty - done
        if new_open <= 0:
            # FIX: OrderQty <= CumQty makes the order done, so the open remainder is cancelled (the
            # quantity already allocated or reserved stays as it is).
            kg = o.open_kg
            self._emit(CANCELLED, cmd.ts, Cancelled(o.order_id, kg))
            return {
                "command": "amend",
                "status": "OK",
                "order_id": o.order_id,
                "closed": True,
                "cancelled_kg": kg,
                "priority_lost": False,
                "allocations": [],
                "proposals": [],
            }
        if o.min_order_kg > qty:
            return self._reject_command(cmd, v.INVALID_AMEND, "quantity_kg below the order's min_order_kg")
        priority_lost = price != o.price or new_open > o.open_kg
        if priority_lost and self.halted:
            return self._reject_command(
                cmd, v.SHARD_HALTED, self._halt_detail() + "; only quantity-down amends are taken"
            )
        if price != o.price and self._out_of_band(price):
            return self._reject_command(cmd, v.PRICE_OUT_OF_BAND, self._band_detail(price))
        priority = self.seq + 1 if priority_lost else o.priority
        self._emit(AMENDED, cmd.ts, Amended(o.order_id, qty, new_open, price, priority_lost, priority))
        start = len(self._out)
        if priority_lost:
            self._match(o, cmd.ts, "amend")
        new = self._out[start:]
        return {
            "command": "amend",
            "status": "OK",
            "order_id": o.order_id,
            "priority_lost": priority_lost,
            "allocations": [e.payload.to_dict() for e in new if e.type == ALLOCATED],
            "proposals": [e.payload.to_dict() for e in new if e.type == PROPOSED],
        }
