"""Negotiation (NEGOTIATE requirements) and allocations with their audit trail.

- ``GET /v1/orders/{id}/proposals``: match proposals of one of my orders (PostgreSQL projection).
- ``POST /v1/proposals/{id}/accept|reject``: the buyer accepts (reserves kg until a hold expiry) or
  turns a proposal down.
- ``POST /v1/reservations/{id}/confirm|release``: the seller confirms (an allocation at the
  availability's price) or releases; the buyer may release too.
- ``GET /v1/allocations``, ``GET /v1/allocations/{id}``: my trades; one trade with its audit trail
  (score breakdown, risk decision with reasons and model versions, event sequence numbers).

kg and paise/kg throughout. Another party's ids answer 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request

from actors.core.commands import ConfirmReservation, RejectProposal, ReleaseReservation
from gateway.auth import STAFF, BuyerPrincipal, OrderReader, SellerPrincipal, TraderPrincipal
from gateway.consistency import id_position
from gateway.edge.text import EntityId, TextRule
from gateway.problems import Problem
from gateway.responses import (
    AUTHED,
    BODY,
    AcceptResult,
    AllocationDetail,
    AllocationPage,
    ConfirmResult,
    ProposalPage,
    RejectResult,
    ReleaseResult,
    errors,
)
from gateway.routes_orders import arrival_ms, command_result, decode_cursor, encode_cursor, gw
from gateway.schemas import AcceptIn, to_jsonable
from persistence.event_store import STORED_PAYLOAD_SQL, payload_dict, stored_payload

router = APIRouter(prefix="/v1", tags=["negotiation", "allocations"])


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def _rowdict(r: Any) -> dict[str, Any]:
    return {
        k: _json(v) if k in ("doc", "breakdown", "risk", "model_versions", "payload") else v
        for k, v in dict(r).items()
    }


#: errors of a command on an existing proposal/reservation (POST without a body)
_COMMAND_ERRORS = errors(*AUTHED, 400, 403, 404, 409, 422)


@router.get(
    "/orders/{order_id}/proposals",
    summary="Match proposals of one of my orders",
    response_model=ProposalPage,
    responses=errors(*AUTHED, 403, 404, 422),
)
async def list_proposals(order_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    """``{"items": [{proposal_id, buy_order_id, sell_order_id, quantity_kg, price, status, score,
    breakdown, risk, ...}]}`` newest last."""
    g = gw(request)
    await g.rw.wait(g.pool, p.party_id, [g.shard_for_id(order_id)])
    owner = await g.pool.fetchval("SELECT party_id FROM orders WHERE order_id = $1", order_id)
    if owner is None or owner != p.party_id:
        raise Problem("not-found", "no such order")
    rows = await g.pool.fetch(
        "SELECT proposal_id, shard_id, seq, ts, buy_order_id, sell_order_id, buyer_id, seller_id,"
        " quantity_kg, price, status, doc FROM proposals WHERE buy_order_id = $1 OR sell_order_id = $1"
        " ORDER BY seq",
        order_id,
    )
    items = []
    for r in rows:
        d = _rowdict(r)
        doc = d.pop("doc") or {}
        for k in ("score", "breakdown", "risk"):
            if k in doc:
                d[k] = doc[k]
        items.append(d)
    return {"items": to_jsonable(items)}


async def _run_one(request: Request, target: str, cmd: Any) -> Any:
    g = gw(request)
    sid = g.shard_for_id(target)
    await g.handle(sid)
    (r,) = await g.run(sid, [cmd])
    return command_result(r)


@router.post(
    "/proposals/{proposal_id}/accept",
    summary="Accept a proposal (buyer): reserve quantity",
    response_model=AcceptResult,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def accept_proposal(
    proposal_id: EntityId,
    request: Request,
    p: BuyerPrincipal,
    body: AcceptIn | None = Body(None),
) -> Any:
    """Reserve the proposed kg (or ``quantity``) on both orders for ``hold_minutes``; the result
    carries the reservation ``{reservation_id, quantity_kg, price, hold_until (epoch ms)...}``."""
    body = body or AcceptIn.model_validate({})
    return await _run_one(
        request, proposal_id, body.to_command(arrival_ms(request), p.party_id or "", proposal_id)
    )


@router.post(
    "/proposals/{proposal_id}/reject",
    summary="Reject a proposal (buyer)",
    response_model=RejectResult,
    responses=_COMMAND_ERRORS,
)
async def reject_proposal(proposal_id: EntityId, request: Request, p: BuyerPrincipal) -> Any:
    return await _run_one(
        request, proposal_id, RejectProposal(arrival_ms(request), p.party_id or "", proposal_id)
    )


@router.post(
    "/reservations/{reservation_id}/confirm",
    summary="Confirm a reservation (seller)",
    response_model=ConfirmResult,
    responses=_COMMAND_ERRORS,
)
async def confirm_reservation(reservation_id: EntityId, request: Request, p: SellerPrincipal) -> Any:
    """The reservation becomes an allocation: ``{"allocation": {allocation_id, quantity_kg, price...}}``."""
    return await _run_one(
        request, reservation_id, ConfirmReservation(arrival_ms(request), p.party_id or "", reservation_id)
    )


@router.post(
    "/reservations/{reservation_id}/release",
    summary="Release a reservation (seller or buyer)",
    response_model=ReleaseResult,
    responses=_COMMAND_ERRORS,
)
async def release_reservation(reservation_id: EntityId, request: Request, p: TraderPrincipal) -> Any:
    return await _run_one(
        request, reservation_id, ReleaseReservation(arrival_ms(request), p.party_id or "", reservation_id)
    )


_ALLOC_COLS = (
    "allocation_id, shard_id, seq, ts, buy_order_id, sell_order_id, buyer_id, seller_id, taker_order_id, "
    "quantity_kg, price, score, breakdown, risk, model_versions, reservation_id"
)


@router.get(
    "/allocations",
    summary="List my allocations (trades)",
    response_model=AllocationPage,
    responses=errors(*AUTHED, 400, 403, 422),
)
async def list_allocations(
    request: Request,
    p: TraderPrincipal,
    as_: Literal["buyer", "seller"] | None = Query(None, alias="as"),
    shard_id: Annotated[str, TextRule(60)] | None = None,
    since_ts: int | None = Query(None, ge=0, le=2**53),
    cursor: Annotated[str, TextRule(500)] | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """``{"items": [allocation...], "next_cursor"}`` oldest first; ``as`` filters my side."""
    g = gw(request)
    args: list[Any] = [p.party_id]
    if as_ == "buyer":
        where = ["buyer_id = $1"]
    elif as_ == "seller":
        where = ["seller_id = $1"]
    else:
        where = ["(buyer_id = $1 OR seller_id = $1)"]
    if shard_id:
        args.append(shard_id)
        where.append(f"shard_id = ${len(args)}")
    if since_ts is not None:
        args.append(since_ts)
        where.append(f"ts >= ${len(args)}")
    cur = decode_cursor(cursor, 2)
    if cur is not None:
        args.extend([int(cur[0]), str(cur[1])])
        where.append(f"(ts, allocation_id) > (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    await g.rw.wait(g.pool, p.party_id, [shard_id] if shard_id else None)
    rows = await g.pool.fetch(
        f"SELECT {_ALLOC_COLS} FROM allocations WHERE {' AND '.join(where)} ORDER BY ts, allocation_id "
        f"LIMIT ${len(args)}",
        *args,
    )
    items = [_rowdict(r) for r in rows[:limit]]
    nxt = (
        encode_cursor([rows[limit - 1]["ts"], rows[limit - 1]["allocation_id"]])
        if len(rows) > limit
        else None
    )
    return {"items": to_jsonable(items), "next_cursor": nxt}


def _id_seq(ref: int | str) -> int | None:
    """The seq of the event that created a shard-assigned id (``O-<shard>-<seq>``, ``A-``, ``P-``,
    ``R-``: :mod:`actors.core.ids`); an int is a seq already. None when the id has no seq part."""
    if isinstance(ref, int):
        return ref
    tail = ref.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


async def _audit_events(
    pool: Any, shard_id: str, upto: int | None, refs: list[int | str], keep: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Events of ``shard_id`` (seq <= ``upto`` when given) for which ``keep`` holds, oldest first, as
    ``{seq, type, ts, schema_version, payload}``. Read at the seqs the ids in ``refs`` were created
    at (ids keep their seq: :mod:`actors.core.ids`); when one of them is not there (ids of a shard
    merged by migration 0006 keep their old seq), the shard's log up to ``upto`` is read and
    filtered instead (payloads are binary, so the filter runs here, not in SQL)."""
    seqs = [q for q in map(_id_seq, refs) if q is not None and (upto is None or q <= upto)]
    cols = f"seq, type, ts, schema_version, {STORED_PAYLOAD_SQL}"
    recs = await pool.fetch(
        f"SELECT {cols} FROM events WHERE shard_id = $1 AND seq = ANY($2::bigint[]) ORDER BY seq",
        shard_id,
        seqs,
    )
    found = [e for e in map(_event_dict, recs) if keep(e)]
    if len(seqs) == len(refs) and len(found) == len(set(seqs)):
        return found
    recs = await pool.fetch(
        f"SELECT {cols} FROM events WHERE shard_id = $1 AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
        shard_id,
        upto,
    )
    return [e for e in map(_event_dict, recs) if keep(e)]


def _event_dict(r: Any) -> dict[str, Any]:
    return {
        "seq": r["seq"],
        "type": r["type"],
        "ts": r["ts"],
        "schema_version": r["schema_version"],
        "payload": payload_dict(stored_payload(r["body"], r["payload_text"])),
    }


@router.get(
    "/allocations/{allocation_id}",
    summary="One allocation with its audit trail",
    response_model=AllocationDetail,
    responses=errors(*AUTHED, 403, 404, 422),
)
async def get_allocation(allocation_id: EntityId, request: Request, p: OrderReader) -> Any:
    """The allocation plus ``audit``: ``{"events": [{seq, type, ts, payload}...]}`` — the orders'
    acceptance, the proposal/reservation (if negotiated) and the allocation event itself, in seq
    order, with the score breakdown, risk decision (outcome, reasons, tiers, model versions)."""
    g = gw(request)
    await g.rw.wait(g.pool, p.party_id, [g.shard_for_id(allocation_id)], id_position(allocation_id))
    r = await g.pool.fetchrow(
        f"SELECT {_ALLOC_COLS} FROM allocations WHERE allocation_id = $1", allocation_id
    )
    if r is None or (p.party_id not in (r["buyer_id"], r["seller_id"]) and not p.has(*STAFF)):
        raise Problem("not-found", "no such allocation")
    a = _rowdict(r)
    sid, seq, rid = a["shard_id"], a["seq"], a["reservation_id"]
    ids = {a["buy_order_id"], a["sell_order_id"]}

    def related(e: dict[str, Any]) -> bool:  # the allocation, its orders' acceptance, its reservation
        pl = e["payload"]
        o = pl.get("order")
        return (
            e["seq"] == seq
            or (isinstance(o, dict) and o.get("order_id") in ids)
            or (rid is not None and pl.get("reservation_id") == rid)
            or pl.get("allocation_id") == allocation_id
        )

    events = await _audit_events(g.pool, sid, seq, [seq, *ids, *([rid] if rid else [])], related)
    prop_ids = {e["payload"].get("proposal_id") for e in events} - {None}
    if prop_ids:
        more = await _audit_events(
            g.pool,
            sid,
            None,
            list(prop_ids),
            lambda e: e["type"] == "PROPOSED" and e["payload"].get("proposal_id") in prop_ids,
        )
        events = sorted(events + more, key=lambda e: e["seq"])
    for e in events:  # never disclose a counterparty's order internals beyond the facts of this trade
        pl = e.get("payload")
        if isinstance(pl, dict) and "order" in pl and isinstance(pl["order"], dict):
            o = pl["order"]
            if o.get("party_id") != p.party_id and not p.has(*STAFF):
                e["payload"] = {
                    "order": {k: o.get(k) for k in ("order_id", "side", "price", "quantity_kg", "created_ts")}
                }
    a["audit"] = {"events": events, "event_seqs": [e["seq"] for e in events]}
    return to_jsonable(a)
