"""Ledger postings of each settlement event (pure): which transfers an event makes.

B = buyer, S = seller, DESK = the desk's clearing party; N = contracted kg x price, paise.
Transfer ids are ``T<seq>.<n>`` (the event's seq in the settlement stream, then 1, 2...), so
replaying the log makes the same transfers (docs/post-trade.md, "Ledger").

- CONTRACT_OPENED: pending ``B:exposure -> DESK:exposure`` N (credit exposure reserved) and pending
  ``B:goods_in_transit -> S:goods_in_transit`` N (goods owed to the buyer).
- DELIVERY_RECORDED (G = settled kg x contract price, R = undelivered kg x price when delivery is
  not complete, else 0): post the goods pending with min(G, pending) (TigerBeetle releases the rest),
  a posted transfer for any G above it, a new goods pending R; void the exposure pending and
  re-reserve R as a new pending.
- INVOICE_ISSUED (A): ``S:receivable -> B:payable`` A and ``B:exposure -> DESK:exposure`` A, posted.
- PAYMENT_RECEIVED (p): ``B:payable -> B:cash`` p (the buyer pays out), ``S:cash -> S:receivable``
  p (the seller collects), ``DESK:exposure -> B:exposure`` p (exposure falls), posted.
- CONTRACT_CANCELLED: void both pending transfers of the contract.
- Other events post nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.core.events import Event
from actors.core.posttrade import events as pe
from actors.core.posttrade.ledger import (
    CASH,
    DESK,
    EXPOSURE,
    GOODS_IN_TRANSIT,
    PAYABLE,
    PENDING,
    POST_PENDING,
    RECEIVABLE,
    VOID_PENDING,
    Transfer,
    account_id,
)

if TYPE_CHECKING:
    from actors.core.posttrade.state import Contract


class _Out:
    def __init__(self, e: Event) -> None:
        self.e = e
        self.items: list[Transfer] = []

    def add(
        self, debit: str, credit: str, amount: int, code: str, flags: int = 0, pending_id: str = ""
    ) -> None:
        if amount <= 0 and not flags & (POST_PENDING | VOID_PENDING):
            return
        tid = f"T{self.e.seq}.{len(self.items) + 1}"
        cid = self.e.payload.contract_id
        self.items.append(Transfer(tid, debit, credit, amount, flags, pending_id, code, cid, self.e.ts))


def _accts(p: Any) -> dict[str, str]:
    b, s = p.buyer_id, p.seller_id
    return {
        "b_exp": account_id(b, EXPOSURE),
        "desk_exp": account_id(DESK, EXPOSURE),
        "b_git": account_id(b, GOODS_IN_TRANSIT),
        "s_git": account_id(s, GOODS_IN_TRANSIT),
        "s_rec": account_id(s, RECEIVABLE),
        "b_pay": account_id(b, PAYABLE),
        "b_cash": account_id(b, CASH),
        "s_cash": account_id(s, CASH),
    }


def postings_for(e: Event, c: Contract | None, pending: dict[str, Transfer] | None = None) -> list[Transfer]:
    """The transfers of event ``e`` given its contract's state before the event (None before
    CONTRACT_OPENED) and the ledger's open pending transfers ``pending`` (id -> transfer)."""
    p = e.payload
    a = _accts(p)
    out = _Out(e)
    t = e.type
    if t == pe.CONTRACT_OPENED:
        n = p.quantity_kg * p.price
        out.add(a["b_exp"], a["desk_exp"], n, "pending_exposure", PENDING)
        out.add(a["b_git"], a["s_git"], n, "pending_goods", PENDING)
    elif t == pe.DELIVERY_RECORDED and c is not None:
        price = c.terms.price
        g = p.settled_kg * price
        rest_kg = 0 if p.complete else max(0, c.terms.quantity_kg - c.settled_kg - p.settled_kg)
        r = rest_kg * price
        pend = (pending or {}).get(c.pending_goods)
        held = pend.amount if pend is not None else 0
        if pend is not None:
            out.add(a["b_git"], a["s_git"], min(g, held), "post_goods", POST_PENDING, pend.id)
        out.add(a["b_git"], a["s_git"], g - min(g, held), "goods")
        out.add(a["b_git"], a["s_git"], r, "pending_goods", PENDING)
        if c.pending_exposure:
            out.add(a["b_exp"], a["desk_exp"], 0, "void_exposure", VOID_PENDING, c.pending_exposure)
        out.add(a["b_exp"], a["desk_exp"], r, "pending_exposure", PENDING)
    elif t == pe.INVOICE_ISSUED:
        out.add(a["s_rec"], a["b_pay"], p.amount, "invoice")
        out.add(a["b_exp"], a["desk_exp"], p.amount, "exposure")
    elif t == pe.PAYMENT_RECEIVED:
        out.add(a["b_pay"], a["b_cash"], p.amount, "payment")
        out.add(a["s_cash"], a["s_rec"], p.amount, "payment")
        out.add(a["desk_exp"], a["b_exp"], p.amount, "payment_exposure")
    elif t == pe.CONTRACT_CANCELLED and c is not None:
        if c.pending_goods:
            out.add(a["b_git"], a["s_git"], 0, "void_goods", VOID_PENDING, c.pending_goods)
        if c.pending_exposure:
            out.add(a["b_exp"], a["desk_exp"], 0, "void_exposure", VOID_PENDING, c.pending_exposure)
    return out.items
