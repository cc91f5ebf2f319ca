"""Market data for a shard (public orders only; counterparties never disclosed).

- ``GET /v1/market/{region}/{commodity}/top``: best bid/ask (paise/kg) and open kg at each.
- ``GET /v1/market/{region}/{commodity}/depth?levels=N``: ``{"bids": [[price, kg, orders]...], "asks": ...}``.
- ``GET /v1/market/{region}/{commodity}/trades?limit=N``: recent trades ``{seq, ts, quantity_kg, price}``.
- ``POST /v1/market/search``: ranked availabilities for a hypothetical requirement; places nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from actors.core.commodities import canonical_commodity
from actors.core.ids import shard_id_for
from actors.core.regions import is_region
from gateway.auth import MarketReader
from gateway.edge.text import TextRule
from gateway.problems import Problem
from gateway.responses import AUTHED, BODY, DepthOut, SearchOut, TopOut, TradesOut, errors
from gateway.routes_orders import arrival_ms, command_result, gw
from gateway.schemas import REGION_PATTERN, SearchIn, to_jsonable
from gateway.visibility import visible_trades

router = APIRouter(prefix="/v1/market", tags=["market data"])

RegionP = Annotated[str, Path(pattern=REGION_PATTERN, description="ISO 3166-2, e.g. IN-GJ")]
CommodityP = Annotated[str, TextRule(40), Path(description="cotton, soybean, ... (Agmarknet spellings)")]


def _shard(region: str, commodity: str) -> str:
    canon = canonical_commodity(commodity)
    if canon is None:
        raise Problem("not-found", f"unknown commodity {commodity}")
    if not is_region(region):
        raise Problem("not-found", f"unknown region {region}: expected an ISO 3166-2 code such as IN-GJ")
    return shard_id_for(region, canon)


_READ_ERRORS = errors(*AUTHED, 404, 422)


@router.get(
    "/{region}/{commodity}/top", summary="Best bid and ask", response_model=TopOut, responses=_READ_ERRORS
)
async def top(
    request: Request,
    _p: MarketReader,
    region: RegionP,
    commodity: CommodityP,
) -> Any:
    """``{shard_id, seq, bid, bid_kg, ask, ask_kg}``; ``bid``/``ask`` paise/kg or null."""
    g = gw(request)
    return to_jsonable(await g.query(_shard(region, commodity), "best_bid_ask"))


@router.get(
    "/{region}/{commodity}/depth",
    summary="Aggregated book depth",
    response_model=DepthOut,
    responses=_READ_ERRORS,
)
async def depth(
    request: Request,
    _p: MarketReader,
    region: RegionP,
    commodity: CommodityP,
    levels: int = Query(10, ge=1, le=100),
) -> Any:
    g = gw(request)
    return to_jsonable(await g.query(_shard(region, commodity), "depth", levels=levels))


@router.get(
    "/{region}/{commodity}/trades", summary="Recent trades", response_model=TradesOut, responses=_READ_ERRORS
)
async def trades(
    request: Request,
    _p: MarketReader,
    region: RegionP,
    commodity: CommodityP,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Newest first: ``{"items": [{seq, ts, quantity_kg, price}]}`` (no party or order ids). Only
    trades whose orders the caller may see (``gateway.visibility``): a deal with a PRIVATE order
    shows to its parties and the parties on that order's allow-list."""
    sid = _shard(region, commodity)
    g = gw(request)
    await g.rw.wait(g.pool, _p.party_id, [sid])  # the caller's own trades are in the read model
    return {"shard_id": sid, "items": await visible_trades(g.pool, sid, _p.party_id, limit)}


@router.post(
    "/search",
    summary="Search ranked availabilities (browse, nothing placed)",
    response_model=SearchOut,
    responses=errors(*AUTHED, *BODY, 404),
)
async def search(body: SearchIn, request: Request, p: MarketReader) -> Any:
    """``{"status": "OK", "candidates": [{order_id, price, open_kg, quality, region, city, score,
    breakdown}]}``. Private listings appear only to parties on their allow-list."""
    g = gw(request)
    party = p.party_id or f"browse:{p.key_id}"
    linked = await g.linked_parties(p.party_id) if p.party_id else ()
    cmd = body.to_command(arrival_ms(request), party, linked)
    sid = shard_id_for(cmd.region, cmd.commodity)
    # an invalid query is a 422 (order-rejected with the core's reason), never a 200
    return command_result(await g.query(sid, "search", query=cmd, limit=body.limit))
