"""Negotiation of a shard: a NEGOTIATE requirement's match proposals, which the buyer accepts
(quantity reserved on both orders until a hold expiry) or rejects, and the seller confirms (an
allocation at the proposal's price) or either side releases (the quantity returns to both orders).
"""

from __future__ import annotations

from typing import Any

from actors.core import orders as st
from actors.core import validation as v
from actors.core.commands import AcceptProposal, ConfirmReservation, RejectProposal, ReleaseReservation
from actors.core.events import (
    CONFIRMED,
    PROPOSAL_REJECTED,
    RELEASED,
    RESERVED,
    Confirmed,
    ProposalRejected,
    Reserved,
)
from actors.core.placing import released
from actors.core.state import ShardState

MAX_HOLD_MS = 7 * 24 * 3600 * 1000  # a reservation is held at most a week
OPEN = "OPEN"
ACTIVE = "ACTIVE"


class Negotiation(ShardState):
    """Accept / reject a proposal, confirm / release a reservation."""

    def _open_proposal(self, cmd: AcceptProposal | RejectProposal) -> dict[str, Any]:
        """The buyer's OPEN proposal named by ``cmd``, or ``{"_reject": (reason, detail)}``."""
        p = self.proposals.get(cmd.proposal_id) if isinstance(cmd.proposal_id, str) else None
        if p is None or p["buyer_id"] != cmd.party_id:
            return {"_reject": (v.UNKNOWN_PROPOSAL, "no such proposal for this buyer")}
        if p["status"] != OPEN:
            return {"_reject": (v.PROPOSAL_STALE, f"proposal is {p['status']}")}
        return p

    def _accept(self, cmd: AcceptProposal) -> dict[str, Any]:
        p = self._open_proposal(cmd)
        if "_reject" in p:
            return self._reject_command(cmd, *p["_reject"])
        if self.halted:
            return self._reject_command(cmd, v.SHARD_HALTED, self._halt_detail())
        if not v.is_int(cmd.hold_ms) or not 0 < cmd.hold_ms <= MAX_HOLD_MS:
            return self._reject_command(cmd, v.INVALID_HOLD, f"hold_ms must be in 1..{MAX_HOLD_MS}")
        want = p["quantity_kg"] if cmd.quantity_kg is None else cmd.quantity_kg
        if v.check_quantity(want) is not None or want > p["quantity_kg"]:
            return self._reject_command(
                cmd, v.INVALID_QUANTITY, "quantity_kg must be in 1..the proposed quantity"
            )
        buy, sell = self.orders[p["buy_order_id"]], self.orders[p["sell_order_id"]]
        if buy.status in (st.CANCELLED, st.EXPIRED) or sell.status in (st.CANCELLED, st.EXPIRED):
            return self._reject_command(cmd, v.PROPOSAL_STALE, "an order of the proposal is closed")
        q = min(want, buy.open_kg, sell.open_kg)
        if q <= 0:
            return self._reject_command(cmd, v.PROPOSAL_STALE, "not enough open quantity left on both orders")
        buyer = p["buyer_id"]
        if buyer in self._credit_left:
            q = min(q, self._credit_left[buyer] // p["price"])
            if q <= 0:
                return self._reject_command(cmd, v.RISK_CREDIT_LIMIT, "the buyer's credit limit is used up")
            self._credit_left[buyer] -= q * p["price"]
            self._credit_used[buyer] = self._credit_used.get(buyer, 0) + q * p["price"]
        rid = self._next_id("R")
        payload = Reserved(
            reservation_id=rid,
            buy_order_id=buy.order_id,
            sell_order_id=sell.order_id,
            buyer_id=buy.party_id,
            seller_id=sell.party_id,
            quantity_kg=q,
            price=p["price"],
            proposal_id=p["proposal_id"],
            hold_until=cmd.ts + cmd.hold_ms,
        )
        self._emit(RESERVED, cmd.ts, payload)
        return {"command": "accept", "status": "OK", "reservation": dict(self.reservations[rid])}

    def _reject_proposal(self, cmd: RejectProposal) -> dict[str, Any]:
        p = self._open_proposal(cmd)
        if "_reject" in p:
            return self._reject_command(cmd, *p["_reject"])
        self._emit(PROPOSAL_REJECTED, cmd.ts, ProposalRejected(p["proposal_id"], cmd.party_id))
        return {"command": "reject", "status": "OK", "proposal_id": p["proposal_id"]}

    def _active_reservation(self, cmd: Any, sellers_only: bool) -> dict[str, Any]:
        """The ACTIVE reservation ``cmd`` names, if its party may act on it (the seller; or either
        side unless ``sellers_only``), else ``{"_reject": (reason, detail)}``."""
        r = self.reservations.get(cmd.reservation_id) if isinstance(cmd.reservation_id, str) else None
        allowed: tuple[str, ...] = ()
        if r is not None:
            allowed = (r["seller_id"],) if sellers_only else (r["seller_id"], r["buyer_id"])
        if r is None or cmd.party_id not in allowed:
            return {"_reject": (v.UNKNOWN_RESERVATION, "no such reservation for this party")}
        if r["status"] != ACTIVE:
            return {"_reject": (v.PROPOSAL_STALE, f"reservation is {r['status']}")}
        return r

    def _confirm(self, cmd: ConfirmReservation) -> dict[str, Any]:
        r = self._active_reservation(cmd, sellers_only=True)
        if "_reject" in r:
            return self._reject_command(cmd, *r["_reject"])
        if self.halted:
            return self._reject_command(cmd, v.SHARD_HALTED, self._halt_detail())
        p = self.proposals[r["proposal_id"]]
        payload = Confirmed(
            r["buy_order_id"],
            r["sell_order_id"],
            r["buyer_id"],
            r["seller_id"],
            p["taker_order_id"],
            p["taker_side"],
            "confirm",
            r["quantity_kg"],
            r["price"],
            p["score"],
            p["breakdown"],
            p["risk"],
            self._next_id("A"),
            r["reservation_id"],
        )
        ev = self._emit(CONFIRMED, cmd.ts, payload)
        self._breaker_tripped(ev, cmd.ts)
        return {"command": "confirm", "status": "OK", "allocation": payload.to_dict()}

    def _release(self, cmd: ReleaseReservation) -> dict[str, Any]:
        r = self._active_reservation(cmd, sellers_only=False)
        if "_reject" in r:
            return self._reject_command(cmd, *r["_reject"])
        reason = "SELLER_RELEASED" if cmd.party_id == r["seller_id"] else "BUYER_RELEASED"
        self._emit(RELEASED, cmd.ts, released(r, reason))
        return {"command": "release", "status": "OK", "reservation_id": r["reservation_id"]}
