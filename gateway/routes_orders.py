"""Orders: place an availability / requirement, place a batch, get one, list mine, amend, cancel.

Quantities in responses are integer kg (``*_kg``), prices integer paise/kg (``price``). A place
response carries the immediate allocations (DIRECT_BUY) or proposals (NEGOTIATE), each with its
score breakdown and risk decision. Parties see and change only their own orders: another party's
order id answers 404, exactly like an unknown one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from actors.core.commands import CancelOrder
from actors.core.ids import shard_id_for
from gateway.auth import STAFF, OrderReader, Principal, TraderPrincipal, charge
from gateway.edge.encode import FastJSON
from gateway.edge.text import MAX_ID, EntityId, TextRule, clean_text
from gateway.problems import Problem
from gateway.responses import (
    AUTHED,
    BODY,
    AmendResult,
    BatchResult,
    CancelResult,
    OrderOut,
    OrderPage,
    PlaceResult,
    errors,
)
from gateway.schemas import AmendIn, AvailabilityIn, BatchIn, RequirementIn, to_jsonable

router = APIRouter(prefix="/v1", tags=["orders"])

NOT_FOUND_REASONS = {"UNKNOWN_ORDER", "UNKNOWN_PROPOSAL", "UNKNOWN_RESERVATION"}
CONFLICT_REASONS = {"ORDER_CLOSED", "PROPOSAL_STALE"}


def arrival_ms(request: Request) -> int:
    """Epoch ms at which the request arrived (set by the timing middleware)."""
    ts = getattr(request.state, "arrival_ms", None)
    return int(ts) if ts is not None else int(time.time() * 1000)


def gw(request: Request) -> Any:
    return request.app.state.gw


def command_result(r: dict[str, Any]) -> dict[str, Any]:
    """Raise the matching problem for a REJECTED command result, else return it JSON-ready."""
    if r.get("status") == "REJECTED":
        reason = str(r.get("reason"))
        slug = (
            "not-found"
            if reason in NOT_FOUND_REASONS
            else "conflict"
            if reason in CONFLICT_REASONS
            else "order-rejected"
        )
        raise Problem(slug, str(r.get("detail") or reason), reason=reason)
    return to_jsonable(r)


def place_view(r: dict[str, Any], shard_id: str) -> dict[str, Any]:
    """Response body of a place: ``{order_id, client_order_id, shard_id, status, duplicate,
    allocations: [...], proposals: [...], reason, detail}``, for :class:`FastJSON` (which encodes
    actor values the way ``to_jsonable`` would, without copying them first)."""
    out = {
        "order_id": r.get("order_id"),
        "client_order_id": r.get("client_order_id"),
        "shard_id": shard_id,
        "status": r.get("status"),
        "duplicate": bool(r.get("duplicate")),
        "allocations": r.get("allocations") or [],
        "proposals": r.get("proposals") or [],
    }
    if r.get("status") == "REJECTED":
        out["reason"] = r.get("reason")
        out["detail"] = r.get("detail")
    return out


async def _place(
    request: Request, response: Response, p: Principal, body: AvailabilityIn | RequirementIn
) -> FastJSON:
    if not p.can_place(body.side):
        raise Problem("forbidden", f"this API key may not place {body.side} orders")
    g = gw(request)
    assert p.party_id is not None
    cmd = body.to_command(arrival_ms(request), p.party_id, await g.linked_parties(p.party_id))
    await g.handle_for(cmd.region, cmd.commodity)
    sid = shard_id_for(cmd.region, cmd.commodity)
    (r,) = await g.run(sid, [cmd])
    if r.get("status") == "REJECTED":
        command_result(r)
    return FastJSON(place_view(r, sid), status_code=200 if r.get("duplicate") else 201)


_PLACE_RESPONSES = {
    200: {"model": PlaceResult, "description": "A repeated client_order_id: the original result"},
    **errors(*AUTHED, *BODY, 403, 404),
}


@router.post(
    "/orders/availabilities",
    status_code=201,
    summary="Place an availability (sell)",
    response_model=PlaceResult,
    responses=_PLACE_RESPONSES,
)
async def place_availability(
    body: AvailabilityIn, request: Request, response: Response, p: TraderPrincipal
) -> FastJSON:
    """Place a seller's availability. 201 new, 200 duplicate client_order_id (original result)."""
    return await _place(request, response, p, body)


@router.post(
    "/orders/requirements",
    status_code=201,
    summary="Place a requirement (buy)",
    response_model=PlaceResult,
    responses=_PLACE_RESPONSES,
)
async def place_requirement(
    body: RequirementIn, request: Request, response: Response, p: TraderPrincipal
) -> FastJSON:
    """Place a buyer's requirement. DIRECT_BUY allocates now; NEGOTIATE returns proposals."""
    return await _place(request, response, p, body)


@router.post(
    "/orders/batch",
    summary="Place many orders in one request",
    response_model=BatchResult,
    responses=errors(*AUTHED, *BODY, 403),
)
async def place_batch(body: BatchIn, request: Request, p: TraderPrincipal) -> FastJSON:
    """``{"orders": [...]}`` (each with ``side``) -> ``{"results": [place result per order, same order]}``.

    Rejections are per order (``status`` REJECTED with ``reason``); the request itself succeeds.
    Rate limits charge one token per order."""
    g = gw(request)
    limit = g.settings.api_batch_max_orders
    if len(body.orders) > limit:
        raise Problem("payload-too-large", f"at most {limit} orders per batch")
    await charge(request, p, len(body.orders) - 1)
    assert p.party_id is not None
    ts = arrival_ms(request)
    linked = await g.linked_parties(p.party_id)
    results: list[Any] = [None] * len(body.orders)
    groups: dict[str, list[tuple[int, Any]]] = {}
    may = {side: p.can_place(side) for side in ("SELL", "BUY")}
    shard_ids: dict[tuple[str, str], str] = {}
    for i, o in enumerate(body.orders):
        if not may[o.side]:
            results[i] = {
                "status": "REJECTED",
                "reason": "FORBIDDEN",
                "detail": f"key may not place {o.side}",
                "client_order_id": o.client_order_id,
                "order_id": None,
            }
            continue
        cmd = o.to_command(ts, p.party_id, linked)
        key = (cmd.region, cmd.commodity)
        sid = shard_ids.get(key)
        if sid is None:
            sid = shard_ids[key] = shard_id_for(cmd.region, cmd.commodity)
            if sid not in groups:
                await g.handle_for(cmd.region, cmd.commodity)
        groups.setdefault(sid, []).append((i, cmd))

    async def one(sid: str, items: list[tuple[int, Any]]) -> None:
        try:
            rs = await g.run(sid, [c for _, c in items])
        except Problem as exc:
            for i, c in items:
                results[i] = {
                    "status": "REJECTED",
                    "reason": exc.slug.upper().replace("-", "_"),
                    "detail": exc.detail,
                    "client_order_id": c.client_order_id,
                    "order_id": None,
                }
            return
        for (i, _), r in zip(items, rs, strict=True):
            results[i] = place_view(r, sid)

    await asyncio.gather(*(one(s, it) for s, it in groups.items()))
    if results and all(r.get("reason") == "OVERLOADED" for r in results):
        raise Problem("overloaded", "shard queues are full", headers={"Retry-After": "1"}, retry_after_s=1)
    return FastJSON({"results": results})


def _owned(doc: dict[str, Any] | None, p: Principal) -> dict[str, Any]:
    if doc is None or (doc.get("party_id") != p.party_id and not p.has(*STAFF)):
        raise Problem("not-found", "no such order")
    return doc


@router.get(
    "/orders/{order_id}",
    summary="Get one of my orders",
    response_model=OrderOut,
    responses=errors(*AUTHED, 403, 404, 422),
)
async def get_order(order_id: EntityId, request: Request, p: OrderReader) -> Any:
    """The order's current state (quantities kg: open, reserved, allocated, cancelled, expired),
    from the shard itself; an order the shard no longer holds (closed past its retention window)
    from the orders projection."""
    g = gw(request)
    sid = g.shard_for_id(order_id)
    doc = await g.query(sid, "get_order", order_id=order_id)
    if doc is None:
        raw = await g.pool.fetchval("SELECT doc::text FROM orders WHERE order_id = $1", order_id)
        doc = json.loads(raw) if raw is not None else None
    return to_jsonable(_owned(doc, p))


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        vals = json.loads(raw)
        if not isinstance(vals, list) or len(vals) != n:
            raise ValueError
        ts, key = vals[0], vals[1]  # (epoch ms, id): what the keyset queries compare against
        if not (type(ts) is int and 0 <= ts < 2**53 and isinstance(key, str)):
            raise ValueError
        clean_text(key, MAX_ID)
        return vals
    except Exception:
        raise Problem("malformed-request", "invalid cursor") from None


@router.get(
    "/orders",
    summary="List my orders",
    response_model=OrderPage,
    responses=errors(*AUTHED, 400, 403, 422),
)
async def list_orders(
    request: Request,
    p: TraderPrincipal,
    status: Literal["OPEN", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED"] | None = None,
    side: Literal["SELL", "BUY"] | None = None,
    commodity: Annotated[str, TextRule(40)] | None = None,
    region: Annotated[str, TextRule(10)] | None = None,
    cursor: Annotated[str, TextRule(500)] | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """My orders, oldest first: ``{"items": [order...], "next_cursor": str|null}``. Pass
    ``next_cursor`` back as ``cursor`` for the next page."""
    g = gw(request)
    where = ["party_id = $1"]
    args: list[Any] = [p.party_id]
    for col, val in (("status", status), ("side", side), ("commodity", commodity), ("region", region)):
        if val is not None:
            args.append(val)
            where.append(f"{col} = ${len(args)}")
    cur = decode_cursor(cursor, 2)
    if cur is not None:
        args.extend([int(cur[0]), str(cur[1])])
        where.append(f"(coalesce(created_ts, 0), order_id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    await g.rw.wait(g.pool, p.party_id)
    sql = (
        "SELECT order_id, coalesce(created_ts, 0) AS cts, status, open_kg, reserved_kg, allocated_kg, "
        f"cancelled_kg, expired_kg, quantity_kg, price, doc FROM orders WHERE {' AND '.join(where)} "
        f"ORDER BY coalesce(created_ts, 0), order_id LIMIT ${len(args)}"
    )
    rows = await g.pool.fetch(sql, *args)
    items = []
    for r in rows[:limit]:
        doc = r["doc"]
        doc = json.loads(doc) if isinstance(doc, str) else dict(doc)
        for k in (
            "status",
            "open_kg",
            "reserved_kg",
            "allocated_kg",
            "cancelled_kg",
            "expired_kg",
            "quantity_kg",
            "price",
        ):
            doc[k] = r[k]
        items.append(doc)
    nxt = encode_cursor([rows[limit - 1]["cts"], rows[limit - 1]["order_id"]]) if len(rows) > limit else None
    return {"items": to_jsonable(items), "next_cursor": nxt}


@router.post(
    "/orders/{order_id}/amend",
    summary="Amend quantity and/or price",
    response_model=AmendResult,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def amend_order(order_id: EntityId, body: AmendIn, request: Request, p: TraderPrincipal) -> Any:
    """New total quantity and/or price. Price change or quantity up loses time priority (re-matched)."""
    g = gw(request)
    sid = g.shard_for_id(order_id)
    await g.handle(sid)
    (r,) = await g.run(sid, [body.to_command(arrival_ms(request), p.party_id or "", order_id)])
    return command_result(r)


@router.post(
    "/orders/{order_id}/cancel",
    summary="Cancel the open quantity",
    response_model=CancelResult,
    responses=errors(*AUTHED, 400, 403, 404, 409, 422),
)
async def cancel_order(order_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    """Cancel what is still open: ``{"order_id", "cancelled_kg", "status": "OK"}``."""
    g = gw(request)
    sid = g.shard_for_id(order_id)
    await g.handle(sid)
    (r,) = await g.run(sid, [CancelOrder(arrival_ms(request), p.party_id or "", order_id)])
    return command_result(r)
