"""Request and response bodies of the post-trade API (contracts, deliveries, invoices, payments,
ledger). Units: quantities ``{value, unit}`` converted once to kg; money integer paise; prices
paise/kg; business timestamps epoch ms (absent = the request's arrival time; future times are
accepted, the settlement kernel checks their order)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.responses import Out
from gateway.schemas import Quantity, Strict

EPOCH_MS = Field(default=None, ge=0, lt=2**53, description="epoch ms; absent = arrival time")


class DeliveryIn(Strict):
    """A delivery against a contract: the seller's delivered quantity and the quality measured at
    delivery (for cotton an HVI test: staple_length_mm, micronaire, strength_gtex, uniformity_pct,
    trash_pct, moisture_pct)."""

    quantity: Quantity
    quality: dict[str, float] = Field(default_factory=dict, max_length=32)
    delivered_at: int | None = EPOCH_MS


class CancelIn(Strict):
    """``MUTUAL`` (each party asks; cancelled when both did) or ``OPERATOR`` (operators only)."""

    reason: Literal["MUTUAL", "OPERATOR"]
    at: int | None = EPOCH_MS


class PaymentIn(Strict):
    """A payment of ``amount`` paise, unique per buyer by ``payment_ref`` (e.g. the bank UTR)."""

    amount: int = Field(gt=0, lt=2**53)
    payment_ref: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
    paid_at: int | None = EPOCH_MS


class SweepIn(Strict):
    """The end-of-day job at ``as_of``."""

    as_of: int | None = EPOCH_MS


class ContractOut(Out):
    """A contract (CONTRACT_OPENED fields plus status and progress)."""

    contract_id: str
    allocation_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    quantity_kg: int
    price: int
    status: str
    settled_kg: int
    remaining_kg: int
    delivery_until: int


class InvoiceOut(Out):
    """An invoice: amount, paid and outstanding paise, due date, status."""

    invoice_id: str
    contract_id: str
    amount: int
    paid: int
    outstanding: int
    due_at: int
    status: str


class DeliveryOut(Out):
    """A recorded delivery with its quality adjustments and the invoice it raised."""

    delivery_id: str
    delivered_kg: int
    settled_kg: int
    refused_kg: int
    adjusted_price: int
    adjustments: list[dict[str, Any]]
    invoice: InvoiceOut | None


class PaymentOut(Out):
    """A payment and the invoice after it; ``replayed`` when the payment_ref was known."""

    payment: dict[str, Any]
    invoice: InvoiceOut
    replayed: bool


class Page(Out):
    """A page of items; ``next_cursor`` None on the last page."""

    items: list[dict[str, Any]]
    next_cursor: str | None = None


class SweepOut(Out):
    """Counts of what the sweep recorded."""

    as_of: int
    overdue: int
    defaulted: int
    cancelled: int


class BalancesOut(Out):
    """A party's ledger accounts and its credit exposure (paise)."""

    party_id: str
    accounts: list[dict[str, Any]]
    exposure: int


class PositionsOut(Out):
    """Open (undelivered) contracted kg per commodity and shard."""

    party_id: str
    positions: list[dict[str, Any]]


class AgeingOut(Out):
    """Outstanding paise per ageing bucket (current, 0-30, 31-60, 61-90, 90+ days past due)."""

    party_id: str
    as_of: int
    receivables: dict[str, int]
    payables: dict[str, int]


class PnlOut(Out):
    """Realised and mark-to-market PnL per commodity (paise)."""

    party_id: str
    reference: str
    pnl: list[dict[str, Any]]
