"""Rows of one settlement batch (pure): the events, the ledger transfers and touched accounts, and
the read models (contracts, deliveries, invoices, payments, ``ml_settlements``) after the batch.

The settlement host builds :class:`SettlementRows` from its engine state right after the batch's
events were applied; :class:`persistence.settlement_store.PostgresSettlementStore` writes them in
one transaction. Column orders are the ``*_COLS`` constants. Money paise, kg, epoch ms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.core import events as ev
from actors.core.ids import SETTLEMENT_STREAM
from actors.core.posttrade.ledger import Account, Transfer
from actors.core.posttrade.state import (
    SettlementState,
    contract_status,
    contract_view,
    invoice_status,
    invoice_view,
)
from persistence.event_store import event_tuple

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

ACCOUNT_COLS = (
    "account_id",
    "party_id",
    "kind",
    "flags",
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
    "last_seq",
)
TRANSFER_COLS = (
    "transfer_id",
    "seq",
    "debit_account",
    "credit_account",
    "amount",
    "flags",
    "pending_id",
    "code",
    "contract_id",
    "ts",
)
CONTRACT_COLS = (
    "contract_id",
    "allocation_id",
    "buyer_id",
    "seller_id",
    "commodity",
    "region",
    "shard_id",
    "quantity_kg",
    "price",
    "status",
    "settled_kg",
    "remaining_kg",
    "opened_at",
    "delivery_until",
    "last_seq",
    "doc",
)
DELIVERY_COLS = ("delivery_id", "contract_id", "seq", "doc")
INVOICE_COLS = (
    "invoice_id",
    "contract_id",
    "delivery_id",
    "buyer_id",
    "seller_id",
    "amount",
    "paid",
    "status",
    "issued_at",
    "due_at",
    "paid_at",
    "overdue_at",
    "defaulted_at",
    "last_seq",
    "doc",
)
PAYMENT_COLS = ("buyer_id", "payment_ref", "invoice_id", "amount", "paid_at", "outstanding", "seq")
ML_SETTLEMENT_COLS = (
    "invoice_id",
    "party_id",
    "allocation_id",
    "invoiced_ts",
    "due_ts",
    "amount",
    "paid_ts",
    "paid_amount",
)


@dataclass(slots=True)
class SettlementRows:
    """Row tuples of one settlement batch; ``last_seq`` its last event seq (0 when empty)."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    transfers: list[tuple[Any, ...]] = field(default_factory=list)
    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    contracts: list[tuple[Any, ...]] = field(default_factory=list)
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    invoices: list[tuple[Any, ...]] = field(default_factory=list)
    payments: list[tuple[Any, ...]] = field(default_factory=list)
    ml_settlements: list[tuple[Any, ...]] = field(default_factory=list)
    last_seq: int = 0
    ts: int = 0


def transfer_row(seq: int, t: Transfer) -> tuple[Any, ...]:
    """One ``ledger_transfers`` row."""
    return (
        t.id,
        seq,
        t.debit,
        t.credit,
        t.amount,
        t.flags,
        t.pending_id or None,
        t.code,
        t.contract_id,
        t.ts,
    )


def account_row(a: Account, seq: int) -> tuple[Any, ...]:
    """One ``ledger_accounts`` row (balances after ``seq``)."""
    party, _, kind = a.id.rpartition(":")
    return (
        a.id,
        party,
        kind,
        a.flags,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
        seq,
    )


def transfer_seq(t: Transfer) -> int:
    """The settlement seq in a transfer id ``T<seq>.<n>``."""
    return int(t.id[1:].partition(".")[0])


def batch_transfers(state: SettlementState, first_seq: int) -> list[Transfer]:
    """Transfers the ledger made for events with seq >= ``first_seq`` (the batch's), in order."""
    out: list[Transfer] = []
    for t in reversed(state.ledger.transfers.values()):
        if transfer_seq(t) < first_seq:
            break
        out.append(t)
    out.reverse()
    return out


def settlement_rows(state: SettlementState, events: Sequence[ev.Event]) -> SettlementRows:
    """Rows of a batch of ``events`` already applied to ``state``. Pure."""
    rows = SettlementRows()
    if not events:
        return rows
    first, last = events[0].seq, events[-1].seq
    rows.last_seq, rows.ts = last, events[-1].ts
    contracts: dict[str, None] = {}
    invoices: dict[str, None] = {}
    for e in events:
        p = e.payload
        rows.events.append(event_tuple(SETTLEMENT_STREAM, e))
        contracts[p.contract_id] = None
        inv_id = getattr(p, "invoice_id", None)
        if inv_id:
            invoices[inv_id] = None
        if e.type == "DELIVERY_RECORDED":
            d = ev.payload_to_json(p)
            rows.deliveries.append((p.delivery_id, p.contract_id, e.seq, d))
        elif e.type == "PAYMENT_RECEIVED":
            rows.payments.append(
                (p.buyer_id, p.payment_ref, p.invoice_id, p.amount, p.paid_at, p.outstanding, e.seq)
            )
    transfers = batch_transfers(state, first)
    rows.transfers = [transfer_row(transfer_seq(t), t) for t in transfers]
    touched = dict.fromkeys(a for t in transfers for a in (t.debit, t.credit))
    rows.accounts = [account_row(state.ledger.accounts[a], last) for a in touched]
    for cid in contracts:
        c = state.contracts[cid]
        t = c.terms
        rows.contracts.append(
            (
                cid,
                t.allocation_id,
                t.buyer_id,
                t.seller_id,
                t.commodity,
                t.region,
                t.source_shard_id,
                t.quantity_kg,
                t.price,
                contract_status(c, state.invoices),
                c.settled_kg,
                c.remaining_kg,
                c.opened_at,
                t.delivery_until,
                c.last_seq,
                _dumps(contract_view(state, c)),
            )
        )
    for iid in invoices:
        inv = state.invoices[iid]
        i = inv.issued
        rows.invoices.append(
            (
                iid,
                i.contract_id,
                i.delivery_id,
                i.buyer_id,
                i.seller_id,
                i.amount,
                inv.paid,
                invoice_status(inv),
                i.issued_at,
                i.due_at,
                inv.paid_at,
                inv.overdue_at,
                inv.defaulted_at,
                inv.last_seq,
                _dumps(invoice_view(inv)),
            )
        )
        alloc = state.contracts[i.contract_id].terms.allocation_id
        rows.ml_settlements.append(
            (iid, i.buyer_id, alloc, i.issued_at, i.due_at, i.amount, inv.paid_at, inv.paid)
        )
    return rows
