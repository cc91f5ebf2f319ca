"""The settlement engine (pure): post-trade commands -> settlement events -> state.

Commands (:mod:`msgspec` Structs, each with its timestamp ``ts`` epoch ms; the engine never reads
the clock): :class:`OpenContract`, :class:`RecordDelivery`, :class:`Pay`, :class:`Cancel`,
:class:`Sweep`. :meth:`SettlementEngine.execute` checks a command against the state, decides its
events (seq = next of the stream, gap-free) and applies them through
:meth:`actors.core.posttrade.state.SettlementState.apply`, the same path replay takes, so replay ==
live. A refused command raises :class:`PostTradeError` (``code``, ``status`` the HTTP status the
gateway answers) and records nothing. Idempotency: a contract opens once per allocation; a delivery
with a known ``key`` and a payment with a known ``(buyer, payment_ref)`` return the original result;
a repeated cancel or sweep changes nothing. Rules and figures: docs/post-trade.md.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.core.commodities import get_spec
from actors.core.events import Event
from actors.core.ids import contract_id_for, delivery_id_for, invoice_id_for
from actors.core.posttrade import events as pe
from actors.core.posttrade.quality import adjustments
from actors.core.posttrade.state import (
    Contract,
    SettlementState,
    contract_view,
    invoice_view,
    payment_key,
)
from actors.core.posttrade.terms import DAY_MS, Terms


class PostTradeError(ValueError):
    """A refused post-trade command: ``code`` (stable, snake_case), ``status`` (HTTP), ``detail``."""

    def __init__(self, code: str, detail: str, status: int = 409):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.status = code, detail, status


class OpenContract(msgspec.Struct, frozen=True):
    """Open the contract of an allocation (ALLOCATED/CONFIRMED event ``source_seq`` of shard
    ``source_shard_id``); ``quality_ranges`` from the buyer requirement's order record."""

    ts: int
    allocation_id: str
    source_shard_id: str
    source_seq: int
    commodity: str
    region: str
    buyer_id: str
    seller_id: str
    quantity_kg: int
    price: int
    quality_ranges: dict[str, tuple[float, float]] = {}
    buy_order_id: str = ""
    sell_order_id: str = ""
    delivery_point: dict[str, Any] = {}


class RecordDelivery(msgspec.Struct, frozen=True):
    """The seller (``party_id``; None = operator) delivered ``delivered_kg`` with ``quality``."""

    ts: int
    party_id: str | None
    contract_id: str
    delivered_kg: int
    quality: dict[str, float]
    delivered_at: int
    key: str = ""


class Pay(msgspec.Struct, frozen=True):
    """The buyer (``party_id``; None = operator) pays ``amount`` paise of an invoice."""

    ts: int
    party_id: str | None
    invoice_id: str
    amount: int
    payment_ref: str
    paid_at: int


class Cancel(msgspec.Struct, frozen=True):
    """Cancel a contract: ``MUTUAL`` (both parties ask) or ``OPERATOR`` (``party_id`` None)."""

    ts: int
    party_id: str | None
    contract_id: str
    reason: str
    at: int


class Sweep(msgspec.Struct, frozen=True):
    """End-of-day job at ``as_of``: overdue, defaulted invoices; windows ended without delivery."""

    ts: int
    as_of: int


Command = OpenContract | RecordDelivery | Pay | Cancel | Sweep


class SettlementEngine:
    """Settlement state plus the rules that turn commands into events. ``terms``: the desk's
    configuration (:class:`~actors.core.posttrade.terms.Terms`)."""

    def __init__(self, terms: Terms | None = None, state: SettlementState | None = None) -> None:
        self.terms = terms or Terms()
        self.state = state or SettlementState()
        self._pending: list[Event] = []

    def replay(self, events: list[Event]) -> None:
        """Apply committed events (recovery)."""
        self.state.apply_all(events)

    def execute(self, cmd: Command) -> tuple[list[Event], dict[str, Any]]:
        """Run one command: ``(events recorded, result view)``. Raises :class:`PostTradeError`."""
        self._pending = []
        if isinstance(cmd, OpenContract):
            result = self._open(cmd)
        elif isinstance(cmd, RecordDelivery):
            result = self._deliver(cmd)
        elif isinstance(cmd, Pay):
            result = self._pay(cmd)
        elif isinstance(cmd, Cancel):
            result = self._cancel(cmd)
        else:
            result = self._sweep(cmd)
        return self._pending, result

    def _emit(self, ts: int, etype: str, payload: Any) -> None:
        e = Event(self.state.seq + 1, etype, ts, payload)
        self.state.apply(e)
        self._pending.append(e)

    def _contract(self, contract_id: str, party_id: str | None, role: str) -> Contract:
        c = self.state.contracts.get(contract_id)
        if c is None or (party_id is not None and party_id not in (c.terms.buyer_id, c.terms.seller_id)):
            raise PostTradeError("unknown_contract", f"no contract {contract_id}", 404)
        if party_id is not None and role and getattr(c.terms, f"{role}_id") != party_id:
            raise PostTradeError("not_your_side", f"only the {role} of {contract_id} may do this", 403)
        return c

    def _open(self, cmd: OpenContract) -> dict[str, Any]:
        cid = contract_id_for(cmd.allocation_id)
        c = self.state.contracts.get(cid)
        if c is None:
            window = self.terms.window_ms(cmd.commodity)
            self._emit(
                cmd.ts,
                pe.CONTRACT_OPENED,
                pe.ContractOpened(
                    contract_id=cid,
                    buyer_id=cmd.buyer_id,
                    seller_id=cmd.seller_id,
                    allocation_id=cmd.allocation_id,
                    source_shard_id=cmd.source_shard_id,
                    source_seq=cmd.source_seq,
                    commodity=cmd.commodity,
                    region=cmd.region,
                    quantity_kg=cmd.quantity_kg,
                    price=cmd.price,
                    quality_ranges={k: (float(v[0]), float(v[1])) for k, v in cmd.quality_ranges.items()},
                    delivery_from=cmd.ts,
                    delivery_until=cmd.ts + window,
                    payment_terms_days=self.terms.terms_days(cmd.commodity, cmd.buyer_id),
                    buy_order_id=cmd.buy_order_id,
                    sell_order_id=cmd.sell_order_id,
                    delivery_point=dict(cmd.delivery_point),
                ),
            )
            c = self.state.contracts[cid]
        return contract_view(self.state, c)

    def delivery_result(self, delivery_id: str) -> dict[str, Any]:
        """The API view of a delivery: its event fields plus the invoice it raised."""
        d = self.state.deliveries[delivery_id]
        out = msgspec.to_builtins(d)
        inv = self.state.invoices.get(invoice_id_for(delivery_id))
        out["invoice"] = None if inv is None else invoice_view(inv)
        out["contract_status"] = contract_view(self.state, self.state.contracts[d.contract_id])["status"]
        return out

    def _deliver(self, cmd: RecordDelivery) -> dict[str, Any]:
        if cmd.key and cmd.key in self.state.delivery_keys:
            return self.delivery_result(self.state.delivery_keys[cmd.key])
        c = self._contract(cmd.contract_id, cmd.party_id, "seller")
        t = c.terms
        if c.cancelled is not None or c.delivery_complete:
            raise PostTradeError("contract_not_open", f"{t.contract_id} takes no more deliveries")
        if cmd.delivered_kg <= 0:
            raise PostTradeError("invalid_quantity", "delivered quantity must be positive", 422)
        if cmd.delivered_at < c.opened_at:
            raise PostTradeError("before_open", "a delivery cannot precede its contract", 422)
        if cmd.delivered_at > t.delivery_until:
            raise PostTradeError("delivery_window_closed", f"the window ended at {t.delivery_until}", 409)
        spec = get_spec(t.commodity)
        for name, value in cmd.quality.items():
            param = spec.param(name)
            problem = f"unknown parameter {name}" if param is None else param.value_problem(float(value))
            if problem:
                raise PostTradeError("invalid_quality", problem, 422)
        room = max(0, self.terms.max_settled_kg(t.quantity_kg) - c.settled_kg)
        settled = min(cmd.delivered_kg, room)
        complete = c.settled_kg + settled >= self.terms.complete_kg(t.quantity_kg)
        adjs = adjustments(t.commodity, t.price, t.quality_ranges, cmd.quality)
        price = max(0, t.price + sum(a.paise_per_kg for a in adjs))
        did = delivery_id_for(t.contract_id, len(c.deliveries) + 1)
        parties = {"contract_id": t.contract_id, "buyer_id": t.buyer_id, "seller_id": t.seller_id}
        self._emit(
            cmd.ts,
            pe.DELIVERY_RECORDED,
            pe.DeliveryRecorded(
                **parties,
                delivery_id=did,
                delivered_kg=cmd.delivered_kg,
                settled_kg=settled,
                refused_kg=cmd.delivered_kg - settled,
                quality={k: float(v) for k, v in cmd.quality.items()},
                adjustments=adjs,
                adjusted_price=price,
                delivered_at=cmd.delivered_at,
                complete=complete,
                key=cmd.key,
            ),
        )
        amount = settled * price
        if amount > 0:
            due = cmd.delivered_at + t.payment_terms_days * DAY_MS
            self._emit(
                cmd.ts,
                pe.INVOICE_ISSUED,
                pe.InvoiceIssued(
                    **parties,
                    invoice_id=invoice_id_for(did),
                    delivery_id=did,
                    amount=amount,
                    issued_at=cmd.delivered_at,
                    due_at=due,
                ),
            )
        return self.delivery_result(did)

    def _pay(self, cmd: Pay) -> dict[str, Any]:
        inv = self.state.invoices.get(cmd.invoice_id)
        if inv is None or (
            cmd.party_id is not None and cmd.party_id not in (inv.issued.buyer_id, inv.issued.seller_id)
        ):
            raise PostTradeError("unknown_invoice", f"no invoice {cmd.invoice_id}", 404)
        i = inv.issued
        if cmd.party_id is not None and cmd.party_id != i.buyer_id:
            raise PostTradeError("not_your_side", "only the buyer pays an invoice", 403)
        if not cmd.payment_ref:
            raise PostTradeError("invalid_payment_ref", "payment_ref is required", 422)
        known = self.state.payments.get(payment_key(i.buyer_id, cmd.payment_ref))
        if known is not None:
            if (known.invoice_id, known.amount) != (cmd.invoice_id, cmd.amount):
                raise PostTradeError(
                    "payment_ref_conflict", f"{cmd.payment_ref} was used for another payment"
                )
            return {"payment": msgspec.to_builtins(known), "invoice": invoice_view(inv), "replayed": True}
        if cmd.amount <= 0:
            raise PostTradeError("invalid_amount", "amount must be a positive number of paise", 422)
        if cmd.amount > inv.outstanding:
            raise PostTradeError(
                "overpayment", f"{cmd.amount} paise exceeds the outstanding {inv.outstanding}"
            )
        if cmd.paid_at < i.issued_at:
            raise PostTradeError("before_invoice", "a payment cannot precede its invoice", 422)
        parties = {"contract_id": i.contract_id, "buyer_id": i.buyer_id, "seller_id": i.seller_id}
        outstanding = inv.outstanding - cmd.amount
        self._emit(
            cmd.ts,
            pe.PAYMENT_RECEIVED,
            pe.PaymentReceived(
                **parties,
                invoice_id=i.invoice_id,
                payment_ref=cmd.payment_ref,
                amount=cmd.amount,
                paid_at=cmd.paid_at,
                outstanding=outstanding,
            ),
        )
        if outstanding == 0:
            self._emit(
                cmd.ts,
                pe.INVOICE_PAID,
                pe.InvoicePaid(**parties, invoice_id=i.invoice_id, paid_at=cmd.paid_at),
            )
        payment = self.state.payments[payment_key(i.buyer_id, cmd.payment_ref)]
        return {"payment": msgspec.to_builtins(payment), "invoice": invoice_view(inv), "replayed": False}

    def _cancel(self, cmd: Cancel) -> dict[str, Any]:
        if cmd.reason not in (pe.MUTUAL, pe.OPERATOR):
            raise PostTradeError("invalid_reason", "reason must be MUTUAL or OPERATOR", 422)
        c = self._contract(cmd.contract_id, cmd.party_id, "")
        if c.cancelled is not None:
            return contract_view(self.state, c)
        if c.delivery_complete:
            raise PostTradeError("contract_not_open", f"{c.contract_id} is fully delivered")
        if cmd.reason == pe.OPERATOR and cmd.party_id is not None:
            raise PostTradeError("forbidden", "only an operator cancels with OPERATOR", 403)
        if cmd.at < c.opened_at:
            raise PostTradeError("before_open", "a cancel cannot precede its contract", 422)
        t = c.terms
        parties = {"contract_id": t.contract_id, "buyer_id": t.buyer_id, "seller_id": t.seller_id}
        if cmd.reason == pe.MUTUAL and cmd.party_id is not None:
            if cmd.party_id not in c.cancel_requests:
                self._emit(
                    cmd.ts,
                    pe.CANCEL_REQUESTED,
                    pe.CancelRequested(**parties, party_id=cmd.party_id, at=cmd.at),
                )
            if {t.buyer_id, t.seller_id} - set(c.cancel_requests):
                return contract_view(self.state, c)
        self._cancelled(cmd.ts, c, cmd.reason, cmd.at)
        return contract_view(self.state, c)

    def _cancelled(self, ts: int, c: Contract, reason: str, at: int) -> None:
        t = c.terms
        parties = {"contract_id": t.contract_id, "buyer_id": t.buyer_id, "seller_id": t.seller_id}
        self._emit(
            ts,
            pe.CONTRACT_CANCELLED,
            pe.ContractCancelled(**parties, reason=reason, cancelled_at=at, cancelled_kg=c.remaining_kg),
        )

    def _sweep(self, cmd: Sweep) -> dict[str, Any]:
        counts = {"overdue": 0, "defaulted": 0, "cancelled": 0}
        grace = self.terms.grace_days * DAY_MS
        for inv in list(self.state.invoices.values()):
            i = inv.issued
            if inv.outstanding == 0 or cmd.as_of <= i.due_at:
                continue
            parties = {"contract_id": i.contract_id, "buyer_id": i.buyer_id, "seller_id": i.seller_id}
            if inv.overdue_at is None:
                days = (cmd.as_of - i.due_at) // DAY_MS
                self._emit(
                    cmd.ts,
                    pe.INVOICE_OVERDUE,
                    pe.InvoiceOverdue(
                        **parties,
                        invoice_id=i.invoice_id,
                        as_of=cmd.as_of,
                        days_past_due=days,
                        outstanding=inv.outstanding,
                    ),
                )
                counts["overdue"] += 1
            if inv.defaulted_at is None and cmd.as_of > i.due_at + grace:
                self._emit(
                    cmd.ts,
                    pe.CONTRACT_DEFAULTED,
                    pe.ContractDefaulted(
                        **parties, invoice_id=i.invoice_id, as_of=cmd.as_of, outstanding=inv.outstanding
                    ),
                )
                counts["defaulted"] += 1
        for c in list(self.state.contracts.values()):
            if c.cancelled is None and not c.delivery_complete and cmd.as_of > c.terms.delivery_until:
                self._cancelled(cmd.ts, c, pe.SELLER_FAILED_TO_DELIVER, cmd.as_of)
                counts["cancelled"] += 1
        return {"as_of": cmd.as_of, **counts, "events": len(self._pending)}
