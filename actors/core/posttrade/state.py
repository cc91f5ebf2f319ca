"""Settlement state (pure): contracts, deliveries, invoices, payments and the ledger, built only by
applying settlement events (:meth:`SettlementState.apply`), so replaying the log gives the live state.

Each event's ledger postings come from :func:`actors.core.posttrade.postings.postings_for` and are
applied in the same step. Statuses are derived (:func:`contract_status`, :func:`invoice_status`):

- contract: OPEN -> PARTIALLY_DELIVERED -> DELIVERED -> INVOICED -> PAID, or OVERDUE -> DEFAULTED
  (an unpaid invoice past due / past grace), or CANCELLED (cancelled before any delivery; a
  cancel after a partial delivery closes the remainder and the contract follows its invoices);
- invoice: ISSUED, PARTIALLY_PAID, PAID, OVERDUE, DEFAULTED.

Units: kg, paise/kg, paise, epoch ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.core.events import Event
from actors.core.posttrade import events as pe
from actors.core.posttrade.ledger import Ledger
from actors.core.posttrade.postings import postings_for

OPEN, PARTIALLY_DELIVERED, DELIVERED, INVOICED, PAID = (
    "OPEN",
    "PARTIALLY_DELIVERED",
    "DELIVERED",
    "INVOICED",
    "PAID",
)
OVERDUE, DEFAULTED, CANCELLED = "OVERDUE", "DEFAULTED", "CANCELLED"
ISSUED, PARTIALLY_PAID = "ISSUED", "PARTIALLY_PAID"
CONTRACT_STATUSES = (OPEN, PARTIALLY_DELIVERED, DELIVERED, INVOICED, PAID, OVERDUE, DEFAULTED, CANCELLED)
INVOICE_STATUSES = (ISSUED, PARTIALLY_PAID, PAID, OVERDUE, DEFAULTED)


@dataclass(slots=True)
class Contract:
    """One contract: the CONTRACT_OPENED payload (``terms``) plus what happened since.
    ``pending_goods``/``pending_exposure``: ids of its open pending transfers ('' when none)."""

    terms: pe.ContractOpened
    opened_at: int
    settled_kg: int = 0
    delivered_kg: int = 0
    delivery_complete: bool = False
    deliveries: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    cancel_requests: list[str] = field(default_factory=list)
    cancelled: pe.ContractCancelled | None = None
    pending_goods: str = ""
    pending_exposure: str = ""
    last_seq: int = 0

    @property
    def contract_id(self) -> str:
        return self.terms.contract_id

    @property
    def remaining_kg(self) -> int:
        """Contracted kg not yet settled (0 once delivery is complete or cancelled)."""
        if self.delivery_complete or self.cancelled is not None:
            return 0
        return max(0, self.terms.quantity_kg - self.settled_kg)


@dataclass(slots=True)
class Invoice:
    """One invoice: amount and paid in paise; ``payments``: payment refs in order."""

    issued: pe.InvoiceIssued
    paid: int = 0
    paid_at: int | None = None
    overdue_at: int | None = None
    defaulted_at: int | None = None
    payments: list[str] = field(default_factory=list)
    last_seq: int = 0

    @property
    def outstanding(self) -> int:
        return self.issued.amount - self.paid


@dataclass(slots=True)
class SettlementState:
    """Everything the settlement stream knows. ``seq``: last applied event seq; ``sources``: per
    shard, the highest source seq a contract was opened from (the host's tailing checkpoint)."""

    contracts: dict[str, Contract] = field(default_factory=dict)
    deliveries: dict[str, pe.DeliveryRecorded] = field(default_factory=dict)
    delivery_keys: dict[str, str] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    payments: dict[str, pe.PaymentReceived] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    sources: dict[str, int] = field(default_factory=dict)
    seq: int = 0

    def apply(self, e: Event) -> None:
        """Apply one settlement event (and its postings). Raises ValueError on a seq gap."""
        if e.seq != self.seq + 1:
            raise ValueError(f"settlement seq gap: applying {e.seq} after {self.seq}")
        p = e.payload
        c = self.contracts.get(p.contract_id)
        transfers = postings_for(e, c, self.ledger.open_pending)
        self.ledger.apply_all(transfers)
        self.seq = e.seq
        if e.type == pe.CONTRACT_OPENED:
            c = self.contracts[p.contract_id] = Contract(p, e.ts)
            self.sources[p.source_shard_id] = max(self.sources.get(p.source_shard_id, 0), p.source_seq)
        assert c is not None, p.contract_id
        c.last_seq = e.seq
        for t in transfers:
            if t.code == "pending_goods":
                c.pending_goods = t.id
            elif t.code == "pending_exposure":
                c.pending_exposure = t.id
            elif t.code == "void_goods" or t.code == "post_goods":
                c.pending_goods = ""
            elif t.code == "void_exposure":
                c.pending_exposure = ""
        self._apply_payload(e.type, p, c, e.seq)

    def _apply_payload(self, etype: str, p: Any, c: Contract, seq: int) -> None:
        if etype == pe.DELIVERY_RECORDED:
            self.deliveries[p.delivery_id] = p
            if p.key:
                self.delivery_keys[p.key] = p.delivery_id
            c.deliveries.append(p.delivery_id)
            c.delivered_kg += p.delivered_kg
            c.settled_kg += p.settled_kg
            c.delivery_complete = c.delivery_complete or p.complete
        elif etype == pe.INVOICE_ISSUED:
            self.invoices[p.invoice_id] = Invoice(p, last_seq=seq)
            c.invoices.append(p.invoice_id)
        elif etype == pe.PAYMENT_RECEIVED:
            inv = self.invoices[p.invoice_id]
            inv.paid += p.amount
            inv.payments.append(p.payment_ref)
            inv.last_seq = seq
            self.payments[payment_key(p.buyer_id, p.payment_ref)] = p
        elif etype == pe.INVOICE_PAID:
            inv = self.invoices[p.invoice_id]
            inv.paid_at, inv.last_seq = p.paid_at, seq
        elif etype == pe.INVOICE_OVERDUE:
            inv = self.invoices[p.invoice_id]
            inv.overdue_at, inv.last_seq = p.as_of, seq
        elif etype == pe.CONTRACT_DEFAULTED:
            inv = self.invoices[p.invoice_id]
            inv.defaulted_at, inv.last_seq = p.as_of, seq
        elif etype == pe.CANCEL_REQUESTED:
            c.cancel_requests.append(p.party_id)
        elif etype == pe.CONTRACT_CANCELLED:
            c.cancelled = p

    def apply_all(self, events: list[Event]) -> None:
        """Apply events in order."""
        for e in events:
            self.apply(e)

    def exposure_of_contracts(self, buyer_id: str) -> int:
        """The buyer's exposure recomputed from contracts and invoices, not the ledger (paise):
        undelivered notional of its open contracts plus its invoices' outstanding amounts."""
        total = 0
        for c in self.contracts.values():
            if c.terms.buyer_id == buyer_id:
                total += c.remaining_kg * c.terms.price
        for inv in self.invoices.values():
            if inv.issued.buyer_id == buyer_id:
                total += inv.outstanding
        return total


def payment_key(buyer_id: str, payment_ref: str) -> str:
    """Payments are unique per (buyer, payment reference)."""
    return f"{buyer_id}\x1f{payment_ref}"


def invoice_status(inv: Invoice) -> str:
    """ISSUED, PARTIALLY_PAID, PAID, OVERDUE or DEFAULTED."""
    if inv.outstanding == 0:
        return PAID
    if inv.defaulted_at is not None:
        return DEFAULTED
    if inv.overdue_at is not None:
        return OVERDUE
    return PARTIALLY_PAID if inv.paid else ISSUED


def contract_status(c: Contract, invoices: dict[str, Invoice]) -> str:
    """The contract's status (module docstring)."""
    if c.cancelled is not None and not c.deliveries:
        return CANCELLED
    invs = [invoices[i] for i in c.invoices]
    states = {invoice_status(i) for i in invs}
    if DEFAULTED in states:
        return DEFAULTED
    if OVERDUE in states:
        return OVERDUE
    if not c.deliveries:
        return OPEN
    if not c.delivery_complete and c.cancelled is None:
        return PARTIALLY_DELIVERED
    if len(invs) < len(c.deliveries):
        return DELIVERED
    return PAID if states == {PAID} else INVOICED


def contract_view(st: SettlementState, c: Contract) -> dict[str, Any]:
    """The API view of a contract (JSON-able)."""
    t = msgspec.to_builtins(c.terms)
    t.update(
        status=contract_status(c, st.invoices),
        opened_at=c.opened_at,
        delivered_kg=c.delivered_kg,
        settled_kg=c.settled_kg,
        remaining_kg=c.remaining_kg,
        deliveries=list(c.deliveries),
        invoices=list(c.invoices),
        cancel_requests=list(c.cancel_requests),
        cancelled=None if c.cancelled is None else msgspec.to_builtins(c.cancelled),
        last_seq=c.last_seq,
    )
    return t


def invoice_view(inv: Invoice) -> dict[str, Any]:
    """The API view of an invoice (JSON-able)."""
    d = msgspec.to_builtins(inv.issued)
    d.update(
        status=invoice_status(inv),
        paid=inv.paid,
        outstanding=inv.outstanding,
        paid_at=inv.paid_at,
        overdue_at=inv.overdue_at,
        defaulted_at=inv.defaulted_at,
        payments=list(inv.payments),
        last_seq=inv.last_seq,
    )
    return d
