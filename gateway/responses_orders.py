"""Response models of the order, negotiation and allocation routes: orders, place results,
matches (allocations, proposals, reservations) and a trade's audit trail.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.responses_problems import Out

# --- orders --------------------------------------------------------------------------------------


class RiskOut(Out):
    """Risk decision of a match: ``outcome`` PASS/FLAG/BLOCK..., reason codes, tiers consulted."""

    outcome: str | None = None
    reasons: list[str] = []
    penalty: float | None = None
    trust: float | None = None
    score: float | None = None
    tiers: list[str] = []
    model_versions: dict[str, Any] = {}


class _Pair(Out):
    """The two orders and parties of a match, its kg and its price (paise/kg)."""

    buy_order_id: str
    sell_order_id: str
    buyer_id: str | None = None
    seller_id: str | None = None
    quantity_kg: int
    price: int


class _Scored(_Pair):
    """A match as the shard recorded it: its event (shard, seq, ts), score and risk decision."""

    shard_id: str | None = None
    seq: int | None = None
    ts: int | None = None
    score: float | None = None
    breakdown: dict[str, Any] | None = None
    risk: RiskOut | None = None


class AllocationOut(_Scored):
    """A trade: ``quantity_kg`` at ``price`` paise/kg between a buy and a sell order."""

    allocation_id: str
    reservation_id: str | None = None
    taker_order_id: str | None = None
    model_versions: dict[str, Any] | None = None


class ProposalOut(_Scored):
    """A match proposal of a NEGOTIATE requirement (accept it to reserve the kg)."""

    proposal_id: str
    status: str | None = Field(None, description="OPEN, ACCEPTED, REJECTED, STALE...")


class ReservationOut(_Pair):
    """Kg held on both orders of an accepted proposal until ``hold_until`` (epoch ms)."""

    reservation_id: str
    proposal_id: str
    hold_until: int
    status: str | None = Field(None, description="ACTIVE, CONFIRMED, RELEASED, EXPIRED")


class OrderOut(Out):
    """An order's state. ``open_kg + reserved_kg + allocated_kg + cancelled_kg + expired_kg ==
    quantity_kg``; ``price`` is the ask (SELL) or the limit (BUY), paise/kg."""

    order_id: str
    party_id: str | None = None
    client_order_id: str | None = None
    side: Literal["SELL", "BUY"]
    commodity: str | None = None
    region: str | None = None
    status: str
    quantity_kg: int
    open_kg: int
    reserved_kg: int
    allocated_kg: int
    cancelled_kg: int
    expired_kg: int
    price: int
    quality: dict[str, float] | None = None
    quality_ranges: dict[str, list[float]] | None = None
    quality_target: dict[str, float] | None = None
    lat: float | None = None
    lon: float | None = None
    city: str | None = None
    district: str | None = None
    max_distance_km: float | None = None
    visibility: str | None = None
    allow_list: list[str] | None = None
    min_order_kg: int | None = None
    allow_partial: bool | None = None
    valid_until: int | None = None
    intent: str | None = None
    profile: str | None = None
    created_ts: int | None = None
    updated_ts: int | None = None


class PlaceResult(Out):
    """Result of one place: ``status`` ACCEPTED (or REJECTED inside a batch, with ``reason``),
    the immediate allocations (DIRECT_BUY) or proposals (NEGOTIATE)."""

    order_id: str | None
    client_order_id: str | None
    shard_id: str | None = Field(None, description="absent for a batch item refused before routing")
    status: str
    duplicate: bool = False
    allocations: list[AllocationOut] = []
    proposals: list[ProposalOut] = []
    reason: str | None = None
    detail: str | None = None


class BatchResult(Out):
    """One result per submitted order, in the same order."""

    results: list[PlaceResult]


class OrderPage(Out):
    """A page of my orders, oldest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[OrderOut]
    next_cursor: str | None


class AmendResult(Out):
    """An amend: ``priority_lost`` when the price changed or the quantity grew (re-matched);
    ``closed`` with ``cancelled_kg`` when the new quantity is at or below what is already allocated,
    reserved or closed (the order is done, its open remainder cancelled, kg)."""

    command: Literal["amend"]
    status: Literal["OK"]
    order_id: str
    priority_lost: bool
    closed: bool = False
    cancelled_kg: int | None = None
    allocations: list[AllocationOut] = []
    proposals: list[ProposalOut] = []


class CancelResult(Out):
    """A cancel: the open kg that was cancelled."""

    command: Literal["cancel"]
    status: Literal["OK"]
    order_id: str
    cancelled_kg: int


# --- negotiation and allocations -----------------------------------------------------------------


class ProposalPage(Out):
    """Proposals of one order, oldest first."""

    items: list[ProposalOut]


class AcceptResult(Out):
    """An accepted proposal: the reservation it made."""

    command: Literal["accept"]
    status: Literal["OK"]
    reservation: ReservationOut


class RejectResult(Out):
    """A proposal turned down."""

    command: Literal["reject"]
    status: Literal["OK"]
    proposal_id: str


class ConfirmResult(Out):
    """A confirmed reservation: the allocation (trade) it became."""

    command: Literal["confirm"]
    status: Literal["OK"]
    allocation: AllocationOut


class ReleaseResult(Out):
    """A released reservation (its kg are open again)."""

    command: Literal["release"]
    status: Literal["OK"]
    reservation_id: str


class AllocationPage(Out):
    """A page of my allocations, oldest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[AllocationOut]
    next_cursor: str | None


class AuditEvent(Out):
    """One event of a trade's audit trail (``payload`` as recorded, counterparty internals cut)."""

    seq: int
    type: str
    ts: int
    schema_version: int | None = None
    payload: dict[str, Any] | None = None


class Audit(Out):
    """The events behind a trade, in seq order."""

    events: list[AuditEvent]
    event_seqs: list[int]


class AllocationDetail(AllocationOut):
    """One allocation with its audit trail."""

    audit: Audit
