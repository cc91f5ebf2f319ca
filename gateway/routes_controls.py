"""Market controls API (operator, admin; docs/operators.md, "Market controls").

- ``POST /v1/admin/shards/{shard_id}/halt`` ``{"reason": "..."}``: halt the shard (new orders,
  risk-increasing amends, accepts and confirms rejected ``SHARD_HALTED``; cancels and releases taken;
  resting orders kept). ``POST /v1/admin/shards/{shard_id}/resume`` (in :mod:`gateway.routes_admin`)
  lifts a halt as well as a drain.
- ``GET|PUT /v1/admin/shards/{shard_id}/price-band``: see or set the shard's price band (the
  commodity's default around the market reference, a percentage, an explicit range, or off).
- ``POST /v1/admin/parties/{party_id}/kill-switch``: cancel every open order of the party in every
  shard; the answer counts the cancelled orders and kg per shard.

Each control is a core command recorded as an event (actors/core/market_controls.py), so replay and
recovery see it; its timestamp is the request's arrival time.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, model_validator

from actors.core.commands import HaltShard, KillSwitch, SetPriceBand
from gateway.auth import OpsPrincipal, Principal
from gateway.edge.text import EntityId, SafeText
from gateway.problems import Problem
from gateway.responses import AUTHED, BODY, Out, errors
from gateway.routes_orders import arrival_ms, command_result, gw
from gateway.schemas import Price, Strict, to_jsonable

router = APIRouter(prefix="/v1/admin", tags=["admin"])


# --- request and response models ------------------------------------------------------------------


class HaltIn(Strict):
    """Why the shard is halted (kept in the SHARD_HALTED event and shown in rejections)."""

    reason: SafeText = "operator halt"


class PriceBandIn(Strict):
    """The band rule: ``default`` (the commodity's band around the market reference), ``percent``
    (``percent`` around the reference, e.g. 15 or 12.5), ``range`` (``min_paise_per_kg`` ..
    ``max_paise_per_kg``, no reference needed) or ``off``."""

    mode: Literal["default", "percent", "range", "off"]
    percent: float | None = Field(None, gt=0, lt=100, description="percent around the reference")
    min_paise_per_kg: Price | None = None
    max_paise_per_kg: Price | None = None

    @model_validator(mode="after")
    def _fits_mode(self) -> PriceBandIn:
        has_range = self.min_paise_per_kg is not None or self.max_paise_per_kg is not None
        if self.mode == "percent":
            if self.percent is None or has_range:
                raise ValueError("mode percent needs percent and no min/max")
            if abs(self.percent * 100 - round(self.percent * 100)) > 1e-6:
                raise ValueError("percent has at most two decimals (basis points)")
        elif self.mode == "range":
            lo, hi = self.min_paise_per_kg, self.max_paise_per_kg
            if lo is None or hi is None or self.percent is not None or lo > hi:
                raise ValueError("mode range needs min_paise_per_kg <= max_paise_per_kg and no percent")
        elif self.percent is not None or has_range:
            raise ValueError(f"mode {self.mode} takes no percent or min/max")
        return self

    def to_command(self, ts: int, operator_id: str) -> SetPriceBand:
        """The core command (``percent`` becomes basis points)."""
        bp = round(self.percent * 100) if self.percent is not None else None
        return SetPriceBand(ts, operator_id, self.mode, bp, self.min_paise_per_kg, self.max_paise_per_kg)


class PriceBandOut(Out):
    """A shard's band, paise/kg (= Rs/quintal); ``low``/``high`` None when there is no band."""

    shard_id: str
    mode: str
    band_bp: int | None = None
    low_paise_per_kg: int | None = None
    high_paise_per_kg: int | None = None
    reference_paise_per_kg: int | None = None
    reference_source: str | None = None
    reference_as_of: str | None = None


class MarketStatusOut(Out):
    """A shard's market status after a control command; ``changed`` false when it was already so."""

    shard_id: str
    changed: bool
    halted: bool
    halt_kind: str | None = None
    halt_reason: str | None = None
    halted_since: int | None = None
    halted_until: int | None = Field(None, description="epoch ms; null for an operator halt")
    trigger: dict[str, Any] | None = None
    price_band: dict[str, Any]


class KillSwitchShard(Out):
    """One shard's part of a kill switch: what it cancelled, or why it could not."""

    shard_id: str
    cancelled_orders: int | None = None
    cancelled_kg: int | None = None
    order_ids: list[str] | None = None
    error: str | None = None


class KillSwitchOut(Out):
    """Totals over every shard; ``complete`` false when a shard could not be reached (retry: the
    kill switch cancels whatever is still open)."""

    party_id: str
    cancelled_orders: int
    cancelled_kg: int
    complete: bool
    shards: list[KillSwitchShard]


# --- helpers ----------------------------------------------------------------------------------------


def operator_of(p: Principal) -> str:
    """Who ran a control, as recorded in its event: the API key id."""
    return p.key_id


async def run_control(request: Request, shard_id: str, cmd: Any) -> dict[str, Any]:
    """Send one control command to ``shard_id``; 404 for an unknown shard, the core's rejection as
    a 422 problem (with ``reason``), 503 when the shard is drained or unreachable."""
    g = gw(request)
    await g.handle(shard_id)
    (r,) = await g.run(shard_id, [cmd])
    return command_result(r)


def _status_view(shard_id: str, r: dict[str, Any]) -> dict[str, Any]:
    return {"shard_id": shard_id, "changed": r["changed"], **r["market"]}


_CONTROL = errors(*AUTHED, *BODY, 403, 404, 503)


# --- routes -------------------------------------------------------------------------------------------


@router.post(
    "/shards/{shard_id}/halt",
    summary="Halt a shard (new orders rejected SHARD_HALTED; cancels taken)",
    response_model=MarketStatusOut,
    responses=_CONTROL,
)
async def halt_shard(shard_id: EntityId, body: HaltIn, request: Request, p: OpsPrincipal) -> Any:
    """Record SHARD_HALTED (kind OPERATOR) until ``POST .../resume``. Halting a halted shard changes
    nothing (``changed`` false); a circuit-breaker halt becomes an operator halt (no end time)."""
    r = await run_control(request, shard_id, HaltShard(arrival_ms(request), operator_of(p), body.reason))
    return _status_view(shard_id, r)


@router.get(
    "/shards/{shard_id}/price-band",
    summary="A shard's price band and market reference",
    response_model=PriceBandOut,
    responses=errors(*AUTHED, 403, 404, 422, 503),
)
async def get_price_band(shard_id: EntityId, request: Request, _p: OpsPrincipal) -> Any:
    g = gw(request)
    await g.handle(shard_id)
    status = await g.query(shard_id, "market_status")
    return {"shard_id": shard_id, **to_jsonable(status["price_band"])}


@router.put(
    "/shards/{shard_id}/price-band",
    summary="Set a shard's price band (percent around the reference, explicit range, default, off)",
    response_model=PriceBandOut,
    responses=_CONTROL,
)
async def put_price_band(shard_id: EntityId, body: PriceBandIn, request: Request, p: OpsPrincipal) -> Any:
    """Record PRICE_BAND_SET; orders priced outside the new band are rejected PRICE_OUT_OF_BAND from
    the next command on (resting orders stay)."""
    r = await run_control(request, shard_id, body.to_command(arrival_ms(request), operator_of(p)))
    return {"shard_id": shard_id, "changed": r["changed"], **r["market"]["price_band"]}


@router.post(
    "/parties/{party_id}/kill-switch",
    summary="Cancel every open order of a party in every shard",
    response_model=KillSwitchOut,
    responses=errors(*AUTHED, 400, 403, 404, 422),
)
async def kill_switch(party_id: EntityId, request: Request, p: OpsPrincipal) -> Any:
    """One KILL_SWITCH command to every shard that is not drained (idle shards are started), run
    concurrently; each records KILL_SWITCH then a CANCELLED event per order. A drained or
    unreachable shard is listed with its ``error`` and ``complete`` is false."""
    from persistence.parties import PartyRepository

    g = gw(request)
    if await PartyRepository(g.pool).get(party_id) is None:
        raise Problem("not-found", "no such party")
    cmd = KillSwitch(arrival_ms(request), operator_of(p), party_id)
    rows = await g.list_shards()

    async def one(row: dict[str, Any]) -> dict[str, Any]:
        sid = str(row["shard_id"])
        if row.get("status") == "DRAINED":
            return {"shard_id": sid, "error": "shard is drained: resume it, then pull the kill switch again"}
        try:
            r = await run_control(request, sid, cmd)
        except Problem as exc:
            return {"shard_id": sid, "error": str(exc)[:300]}
        keep = ("cancelled_orders", "cancelled_kg", "order_ids")
        return {"shard_id": sid, **{k: r[k] for k in keep}}

    shards = await asyncio.gather(*(one(r) for r in rows))
    done = [s for s in shards if "error" not in s]
    return {
        "party_id": party_id,
        "cancelled_orders": sum(s["cancelled_orders"] for s in done),
        "cancelled_kg": sum(s["cancelled_kg"] for s in done),
        "complete": len(done) == len(shards),
        "shards": shards,
    }
