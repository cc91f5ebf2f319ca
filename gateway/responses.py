"""Response models of the HTTP API (pydantic v2), so the OpenAPI document says what each route
returns, plus the error responses each route declares.

Units as everywhere in the API: quantities integer kg (``*_kg``), prices integer paise per kg
(``price``), times epoch ms (``ts``, ``created_ts``, ``hold_until``). Models allow extra members
(``extra="allow"``): a newer server may add fields, never remove or retype the declared ones.

Errors are ``application/problem+json`` (RFC 9457) bodies described by :class:`Problem`;
:func:`errors` builds a route's ``responses=`` declaration from the status codes it really
answers (``gateway.problems.install_openapi`` gives them the problem+json media type).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """Base of every response model: extra members pass through unchanged."""

    model_config = ConfigDict(extra="allow")


# --- problems ------------------------------------------------------------------------------------


class FieldError(Out):
    """One invalid field of a ``validation-error``: ``loc`` path (``["body", "quantity", "unit"]``)."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(Out):
    """RFC 9457 problem details. Clients branch on ``type`` (``urn:tradedesk:problem:<slug>``)."""

    type: str = Field(description="urn:tradedesk:problem:<slug>, stable")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="request path")
    errors: list[FieldError] | None = Field(None, description="validation-error: each bad field")
    reason: str | None = Field(None, description="order-rejected/conflict/not-found: the core's code")
    retry_after_s: int | None = Field(None, description="rate-limited/overloaded: seconds to wait")


_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: invalid JSON, invalid cursor or Idempotency-Key (malformed-request)",
    401: "Missing, unknown or revoked API key (unauthenticated)",
    403: "This API key's roles may not do this (forbidden)",
    404: "No such resource, or not yours (not-found)",
    409: "Conflict with the current state, or the same Idempotency-Key still running",
    413: "Request body too large (payload-too-large)",
    415: "The body is not application/json (unsupported-media-type)",
    422: "Invalid fields (validation-error with errors[]), rejected command, reused Idempotency-Key",
    429: "Rate limit exceeded (rate-limited, Retry-After)",
    503: "Shard queue full, a backing service unavailable, or the read model not yet at the caller's last "
    "write (overloaded/unavailable/projection-behind, Retry-After)",
}

#: Errors any authenticated route can answer: no/invalid key, rate limit, Redis/PostgreSQL down.
AUTHED = (401, 429, 503)
#: Errors of a route that takes a JSON body and honours ``Idempotency-Key`` (every POST with a body).
BODY = (400, 409, 413, 415, 422)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status code with the :class:`Problem` model."""
    return {c: {"model": Problem, "description": _DESCRIPTIONS[c]} for c in sorted(set(codes))}


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


# --- market data ---------------------------------------------------------------------------------


class TopOut(Out):
    """Best public bid/ask (paise/kg, null when that side is empty) and the open kg at each."""

    shard_id: str
    seq: int
    bid: int | None
    bid_kg: int
    ask: int | None
    ask_kg: int


class DepthOut(Out):
    """Aggregated public depth, best first: ``[price, open_kg, orders]`` per level."""

    shard_id: str
    seq: int
    bids: list[list[int]]
    asks: list[list[int]]


class TradeOut(Out):
    """A public trade print (no party or order ids)."""

    seq: int
    ts: int
    quantity_kg: int
    price: int


class TradesOut(Out):
    """Recent trades of a shard, newest first."""

    shard_id: str
    items: list[TradeOut]


class CandidateOut(Out):
    """A ranked availability for a search (counterparty not disclosed)."""

    order_id: str
    side: str | None = None
    price: int
    open_kg: int
    quality: dict[str, float] | None = None
    quality_ranges: dict[str, list[float]] | None = None
    region: str | None = None
    city: str | None = None
    district: str | None = None
    min_order_kg: int | None = None
    score: float
    breakdown: dict[str, Any] | None = None


class SearchOut(Out):
    """Ranked candidates for a hypothetical requirement; nothing is placed."""

    status: Literal["OK"]
    candidates: list[CandidateOut]


# --- admin ---------------------------------------------------------------------------------------


class PartyOut(Out):
    """A counterparty; ``credit_limit_paise`` null = no limit; ``version`` grows on every change."""

    party_id: str
    name: str | None = None
    role: str
    kyc_status: str
    sanctioned: bool
    country: str | None = None
    pan: str | None = None
    gstin: str | None = None
    mobile: str | None = None
    credit_limit_paise: int | None = None
    linked_parties: list[str] = []
    version: int | None = None


class PartyPage(Out):
    """Parties ordered by id."""

    items: list[PartyOut]


class PartyLinks(Out):
    """Parties linked to a party, each with why (``WASH_TRADE``, shared PAN/GSTIN/mobile)."""

    party_id: str
    links: dict[str, list[str]]


class ApiKeyOut(Out):
    """An API key's metadata (never the token); ISO 8601 timestamps."""

    key_id: str
    party_id: str | None = None
    roles: list[str]
    label: str | None = None
    created_at: str | None = None
    revoked_at: str | None = None


class IssuedKey(ApiKeyOut):
    """A new key; ``token`` is in the first response only (only its sha256 is kept)."""

    token: str | None = Field(None, description="td_<key_id>_<secret>; shown once")


class ApiKeyPage(Out):
    """API keys, newest first."""

    items: list[ApiKeyOut]


class Revoked(Out):
    """A revoked key."""

    key_id: str
    revoked: bool


class ShardOut(Out):
    """A shard's status: node, sequence numbers, resting orders, queue depths, draining flag."""

    shard_id: str
    region: str | None = None
    commodity: str | None = None
    node_id: str | None = None
    seq: int | None = None
    committed_seq: int | None = None
    book_size: int | None = None
    queue_depth: int | None = None
    gateway_queue_depth: int | None = None
    draining: bool | None = None
    status: str | None = Field(None, description="UP, or UNREACHABLE with error")
    halted: bool | None = Field(None, description="market halt (operator or circuit breaker)")
    halt_reason: str | None = None
    halted_until: int | None = Field(None, description="epoch ms; null for an operator halt")
    price_band: dict[str, Any] | None = Field(None, description="band and reference, paise/kg")
    projector_seq: int | None = Field(None, description="last seq in the read models (projections)")
    projector_lag_events: int | None = Field(None, description="committed events not yet projected")
    projector_lag_s: float | None = Field(None, description="age of the oldest unprojected event, s")


class ShardPage(Out):
    """Every known shard."""

    items: list[ShardOut]


class RiskHealth(Out):
    """Risk pool health: DEGRADED = ML breaker open (rules only), NOT_DEPLOYED = pass-all decider."""

    status: Literal["UP", "DEGRADED", "DOWN", "NOT_DEPLOYED"]
    detail: str | None = None
    app_status: str | None = None
    deployments: dict[str, str] | None = None
    replicas: dict[str, int] | None = None
    breaker_state: str | None = None
    stats: dict[str, Any] | None = None


# --- ops -----------------------------------------------------------------------------------------


class Health(Out):
    """The process is up."""

    status: Literal["ok"]


class Ready(Out):
    """Per-dependency checks: ``ok`` or ``down: <error>`` (risk pool: its status, lower case)."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str]
