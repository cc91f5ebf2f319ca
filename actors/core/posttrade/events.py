"""Typed payloads of the settlement stream (``SETTLEMENT_STREAM = "settlement"``).

The contract between the settlement kernel, the webhooks and the season replay is
docs/post-trade.md ("Events"). Every payload carries ``contract_id``, ``buyer_id`` and
``seller_id``. Units: kg (int), prices paise/kg (int), money paise (int), times epoch ms.
The shard codec (:mod:`actors.core.events`) registers :data:`SETTLEMENT_PAYLOAD_TYPES`, so these
events are stored, encoded and decoded exactly like the shards' events.
"""

from __future__ import annotations

import msgspec

from actors.core.payload import Payload

CONTRACT_OPENED = "CONTRACT_OPENED"
DELIVERY_RECORDED = "DELIVERY_RECORDED"
INVOICE_ISSUED = "INVOICE_ISSUED"
PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
INVOICE_PAID = "INVOICE_PAID"
INVOICE_OVERDUE = "INVOICE_OVERDUE"
CONTRACT_DEFAULTED = "CONTRACT_DEFAULTED"
CANCEL_REQUESTED = "CANCEL_REQUESTED"
CONTRACT_CANCELLED = "CONTRACT_CANCELLED"

# Cancellation reasons (CONTRACT_CANCELLED.reason)
SELLER_FAILED_TO_DELIVER = "SELLER_FAILED_TO_DELIVER"
MUTUAL = "MUTUAL"
OPERATOR = "OPERATOR"
CANCEL_REASONS = frozenset({SELLER_FAILED_TO_DELIVER, MUTUAL, OPERATOR})


class _Contract(Payload, frozen=True, gc=False):
    """Fields of every settlement payload: the contract and its two parties."""

    contract_id: str
    buyer_id: str
    seller_id: str


class ContractOpened(_Contract, frozen=True, gc=False):
    """A contract for one allocation (ALLOCATED or CONFIRMED at ``source_shard_id``/``source_seq``).
    ``quality_ranges``: the buyer requirement's accepted ``{param: [low, high]}``; ``price``
    paise/kg; ``delivery_from``..``delivery_until`` epoch ms; ``payment_terms_days`` after delivery;
    ``delivery_point``: the seller availability's location (lat, lon, city)."""

    allocation_id: str
    source_shard_id: str
    source_seq: int
    commodity: str
    region: str
    quantity_kg: int
    price: int
    quality_ranges: dict[str, tuple[float, float]]
    delivery_from: int
    delivery_until: int
    payment_terms_days: int
    buy_order_id: str = ""
    sell_order_id: str = ""
    delivery_point: dict[str, object] = msgspec.field(default_factory=dict)


class Adjustment(msgspec.Struct, frozen=True, gc=False):
    """One quality claim: measured ``value`` of ``parameter``, the schedule ``rule`` that applied and
    the price change in paise/kg (negative = discount)."""

    parameter: str
    value: float
    rule: str
    paise_per_kg: int


class DeliveryRecorded(_Contract, frozen=True, gc=False):
    """The seller delivered ``delivered_kg``; ``settled_kg`` of it is accepted (the rest,
    ``refused_kg``, lies beyond the delivery tolerance); ``adjusted_price`` = contract price +
    the adjustments (paise/kg). ``complete``: delivery of the contract is finished. ``key``: the
    command's idempotency key (empty when none)."""

    delivery_id: str
    delivered_kg: int
    settled_kg: int
    refused_kg: int
    quality: dict[str, float]
    adjustments: list[Adjustment]
    adjusted_price: int
    delivered_at: int
    complete: bool
    key: str = ""


class InvoiceIssued(_Contract, frozen=True, gc=False):
    """An invoice for one delivery: ``amount`` paise = settled kg x adjusted price; ``due_at`` =
    delivery + payment terms."""

    invoice_id: str
    delivery_id: str
    amount: int
    issued_at: int
    due_at: int


class PaymentReceived(_Contract, frozen=True, gc=False):
    """A (partial) payment of ``amount`` paise against an invoice; ``outstanding`` after it."""

    invoice_id: str
    payment_ref: str
    amount: int
    paid_at: int
    outstanding: int


class InvoicePaid(_Contract, frozen=True, gc=False):
    """The invoice is paid in full."""

    invoice_id: str
    paid_at: int


class InvoiceOverdue(_Contract, frozen=True, gc=False):
    """End-of-day sweep at ``as_of``: the invoice is past due with ``outstanding`` paise unpaid."""

    invoice_id: str
    as_of: int
    days_past_due: int
    outstanding: int


class ContractDefaulted(_Contract, frozen=True, gc=False):
    """The invoice is unpaid more than the grace period after due."""

    invoice_id: str
    as_of: int
    outstanding: int


class CancelRequested(_Contract, frozen=True, gc=False):
    """One party asked for a MUTUAL cancel; the contract is cancelled when the other asks too."""

    party_id: str
    at: int


class ContractCancelled(_Contract, frozen=True, gc=False):
    """The undelivered part of the contract is cancelled (``reason`` in :data:`CANCEL_REASONS`);
    ``cancelled_kg`` not delivered. Invoices already issued stay due."""

    reason: str
    cancelled_at: int
    cancelled_kg: int = 0


SETTLEMENT_PAYLOAD_TYPES: dict[str, type[Payload]] = {
    CONTRACT_OPENED: ContractOpened,
    DELIVERY_RECORDED: DeliveryRecorded,
    INVOICE_ISSUED: InvoiceIssued,
    PAYMENT_RECEIVED: PaymentReceived,
    INVOICE_PAID: InvoicePaid,
    INVOICE_OVERDUE: InvoiceOverdue,
    CONTRACT_DEFAULTED: ContractDefaulted,
    CANCEL_REQUESTED: CancelRequested,
    CONTRACT_CANCELLED: ContractCancelled,
}
SETTLEMENT_EVENT_TYPES = frozenset(SETTLEMENT_PAYLOAD_TYPES)
