"""Small read endpoints the console needs beside the existing API (JSON, same API keys).

- ``GET /v1/me``: who this API key is (``key_id``, ``party_id``, ``roles``); the console routes
  a signed-in key to the trader or operator page by its roles.
- ``GET /v1/market``: every market (shard) of the shards registry: ``shard_id``, region, commodity.
- ``GET /v1/market/{region}/{commodity}/reference``: the market's Agmarknet reference, the one its
  price bands and circuit breaker use (:func:`persistence.agmarknet_reference.reference_detail`:
  the low median of the state's modal prices over the 30 days to the latest report), with the
  latest day's market rows and range as context; paise/kg (= Rs./quintal).
- ``GET /v1/admin/rejects?minutes=N``: rejections committed in the last N minutes, counted by
  reason and shard (operator, admin), from the events table.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from fastapi import APIRouter, Query, Request

from actors.core.events import COMMAND_REJECTED, ORDER_REJECTED
from actors.core.risk.market import REFERENCE_DAYS
from gateway.auth import MarketReader, OpsPrincipal
from gateway.responses import AUTHED, errors
from gateway.routes_market import CommodityP, RegionP, _shard
from gateway.routes_orders import gw
from persistence.event_store import STORED_PAYLOAD_SQL, payload_dict, stored_payload

from .models import MarketPage, MeOut, ReferenceOut, RejectCounts

router = APIRouter(tags=["console reads"])


@router.get("/v1/me", summary="Who this API key is", response_model=MeOut, responses=errors(*AUTHED))
async def me(p: MarketReader) -> Any:
    """``{key_id, party_id (null for staff keys), roles}``."""
    return {"key_id": p.key_id, "party_id": p.party_id, "roles": list(p.roles)}


@router.get(
    "/v1/market", summary="Every market (shard)", response_model=MarketPage, responses=errors(*AUTHED)
)
async def markets(request: Request, _p: MarketReader) -> Any:
    """``{"items": [{shard_id, region, commodity, status}]}`` by shard id: the shards registry
    (ACTIVE or DRAINED as registered; the actor's live status is the operator's ``/v1/admin/shards``)."""
    rows = await gw(request).pool.fetch("SELECT shard_id, region, commodity, status FROM shards ORDER BY 1")
    return {"items": [dict(r) for r in rows]}


def modal_reference(region: str, commodity: str, source: str = "agmarknet") -> dict[str, Any]:
    """The band's market reference of (ISO 3166-2 ``region``, ``commodity``) as the console shows
    it: ``{"modal": reference paise/kg, "window_days": 30, "samples": modal prices in the window,
    "day": latest report (ISO date), "markets": rows that day, "low"/"high": min/max modal that
    day}`` from :func:`persistence.agmarknet_reference.reference_detail`; ``modal``, ``day``,
    ``low``, ``high`` null and the counts 0 when the market has no reference (no band either), as
    with ``source`` "none" (``TRADEDESK_MARKET_REFERENCE=none``: shards take no reference)."""
    from persistence.agmarknet_reference import reference_detail

    d = reference_detail(region, commodity) if source == "agmarknet" else None
    if d is None:
        none = dict.fromkeys(("modal", "day", "low", "high"))
        return {**none, "window_days": REFERENCE_DAYS, "samples": 0, "markets": 0}
    return {
        "modal": d.price,
        "window_days": d.window_days,
        "samples": d.samples,
        "day": d.day.isoformat(),
        "markets": d.markets,
        "low": d.low,
        "high": d.high,
    }


@router.get(
    "/v1/market/{region}/{commodity}/reference",
    summary="Agmarknet market reference of the price bands",
    response_model=ReferenceOut,
    responses=errors(*AUTHED, 404, 422),
)
async def reference(request: Request, _p: MarketReader, region: RegionP, commodity: CommodityP) -> Any:
    """``{shard_id, source, modal, window_days, samples, day, markets, low, high}`` (see
    :func:`modal_reference`), prices paise/kg (= Rs./quintal). The files are read once per process
    and commodity, off the event loop."""
    sid = _shard(region, commodity)
    reg, _, canon = sid.partition(".")
    source = gw(request).settings.market_reference
    body = await asyncio.to_thread(modal_reference, reg, canon, source)
    return {"shard_id": sid, "source": "Agmarknet", **body}


@router.get(
    "/v1/admin/rejects",
    summary="Recent rejections by reason",
    response_model=RejectCounts,
    responses=errors(*AUTHED, 403, 422),
)
async def rejects(request: Request, _p: OpsPrincipal, minutes: int = Query(15, ge=1, le=1440)) -> Any:
    """``{"since_ts", "minutes", "total", "items": [{reason, shard_id, count}]}`` (most first):
    the ``ORDER_REJECTED`` and ``COMMAND_REJECTED`` events committed in the last ``minutes``.
    Requests refused at the edge (4xx before a shard sees them) are not events and not counted."""
    since = int(time.time() * 1000) - minutes * 60_000
    rows = await gw(request).pool.fetch(
        # literal types: the partial index events_rejects_idx (migration 0010) then serves the scan
        f"SELECT shard_id, {STORED_PAYLOAD_SQL} FROM events"
        f" WHERE type IN ('{ORDER_REJECTED}', '{COMMAND_REJECTED}') AND ts >= $1",
        since,
    )
    counts = Counter(
        (str(payload_dict(stored_payload(r["body"], r["payload_text"])).get("reason") or "?"), r["shard_id"])
        for r in rows
    )
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:200]
    items = [{"reason": reason, "shard_id": sid, "count": n} for (reason, sid), n in ranked]
    return {"since_ts": since, "minutes": minutes, "total": sum(r["count"] for r in items), "items": items}
