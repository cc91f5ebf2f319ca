"""Small read endpoints the console needs beside the existing API (JSON, same API keys).

- ``GET /v1/me``: who this API key is (``key_id``, ``party_id``, ``roles``); the console routes
  a signed-in key to the trader or operator page by its roles.
- ``GET /v1/market``: every market (shard) of the shards registry: ``shard_id``, region, commodity.
- ``GET /v1/market/{region}/{commodity}/reference``: the Agmarknet modal reference of that state
  and commodity (the shipped ``data/agmarknet`` files): the latest reported day's median of the
  markets' modal prices, paise/kg (= Rs./quintal).
- ``GET /v1/admin/rejects?minutes=N``: rejections committed in the last N minutes, counted by
  reason and shard (operator, admin), from the events table.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections import defaultdict
from datetime import date
from typing import Any

from fastapi import APIRouter, Query, Request

from actors.core.events import COMMAND_REJECTED, ORDER_REJECTED
from actors.core.regions import current_code
from gateway.auth import MarketReader, OpsPrincipal
from gateway.responses import AUTHED, errors
from gateway.routes_market import CommodityP, RegionP, _shard
from gateway.routes_orders import gw

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


@functools.lru_cache(maxsize=1)
def _modal_by_day() -> dict[tuple[str, str], dict[date, list[int]]]:
    """``{(commodity, region): {day: [modal paise/kg of each market-row]}}`` of the shipped files."""
    from persistence.agmarknet import default_agmarknet_paths, load_price_points

    out: dict[tuple[str, str], dict[date, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pt in load_price_points(default_agmarknet_paths()):
        out[(pt.commodity, pt.region)][pt.day].append(pt.price)
    return out


def modal_reference(region: str, commodity: str) -> dict[str, Any]:
    """The Agmarknet modal reference of (ISO 3166-2 ``region``, canonical ``commodity``):
    ``{"modal": median paise/kg of the latest day's modal prices, "day": ISO date, "markets": n
    rows that day, "low"/"high": min/max modal that day}``; all null when the files have no row
    for that state and commodity. Agmarknet quotes Rs./quintal, which is exactly paise/kg."""
    days = _modal_by_day().get((commodity, current_code(region)))
    if not days:
        return {"modal": None, "day": None, "markets": 0, "low": None, "high": None}
    last = max(days)
    prices = days[last]
    return {
        "modal": int(statistics.median(prices)),
        "day": last.isoformat(),
        "markets": len(prices),
        "low": min(prices),
        "high": max(prices),
    }


@router.get(
    "/v1/market/{region}/{commodity}/reference",
    summary="Agmarknet modal price reference of the state",
    response_model=ReferenceOut,
    responses=errors(*AUTHED, 404, 422),
)
async def reference(_p: MarketReader, region: RegionP, commodity: CommodityP) -> Any:
    """``{shard_id, source, modal, day, markets, low, high}``, prices paise/kg (= Rs./quintal). The
    files are read once per process (a few seconds), off the event loop."""
    sid = _shard(region, commodity)
    canon = sid.rpartition(".")[2]
    return {"shard_id": sid, "source": "Agmarknet", **await asyncio.to_thread(modal_reference, region, canon)}


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
        "SELECT coalesce(payload->>'reason', '?') AS reason, shard_id, count(*) AS count FROM events"
        " WHERE type = ANY($1::text[]) AND ts >= $2 GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 200",
        [ORDER_REJECTED, COMMAND_REJECTED],
        since,
    )
    items = [dict(r) for r in rows]
    return {"since_ts": since, "minutes": minutes, "total": sum(r["count"] for r in items), "items": items}
