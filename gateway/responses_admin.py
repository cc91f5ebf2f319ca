"""Response models of the admin and ops routes: parties, API keys, shards, risk pool health,
liveness and readiness.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gateway.responses_problems import Out

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
