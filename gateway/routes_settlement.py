"""Post-trade API: contracts, deliveries, invoices, payments and the end-of-day sweep.

- ``GET /v1/contracts?allocation_id=&status=&cursor=``, ``GET /v1/contracts/{id}``: my contracts
  (as buyer or seller; operators see all) from the ``contracts`` read model.
- ``POST /v1/contracts/{id}/deliveries`` (seller): 201 with the delivery, its quality adjustments
  and the invoice it raised.
- ``POST /v1/contracts/{id}/cancel``: ``MUTUAL`` (both parties ask) or ``OPERATOR`` (operators).
- ``GET /v1/invoices?status=&cursor=``, ``GET /v1/invoices/{id}``; ``POST
  /v1/invoices/{id}/payments`` (buyer): same payment_ref again -> the original result; more than
  the outstanding -> 409 ``overpayment``.
- ``POST /v1/admin/settlement/sweep`` (operators): overdue, defaulted, failed deliveries.

Writes go to the settlement host (Ray actor ``settlement``), which commits before it answers;
reads come from PostgreSQL. Another party's ids answer 404. A delivery's ``Idempotency-Key`` is
also handed to the settlement kernel, so a retry after any restart returns the original delivery.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from actors.core.ids import SETTLEMENT_ACTOR
from gateway.auth import STAFF, OpsPrincipal, OrderReader, Principal
from gateway.edge.text import EntityId, TextRule
from gateway.problems import Problem
from gateway.responses import AUTHED, BODY, errors
from gateway.routes_orders import arrival_ms, decode_cursor, encode_cursor, gw
from gateway.schemas import check_unit_for_id
from gateway.schemas_settlement import (
    CancelIn,
    ContractOut,
    DeliveryIn,
    DeliveryOut,
    InvoiceOut,
    Page,
    PaymentIn,
    PaymentOut,
    SweepIn,
    SweepOut,
)

log = logging.getLogger("tradedesk.gateway")
router = APIRouter(prefix="/v1", tags=["settlement"])
_SLUGS = {404: "not-found", 403: "forbidden", 409: "conflict", 422: "settlement-rejected"}
Status = Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z_]+$")]
Cursor = Annotated[str | None, TextRule(512)]
Limit = Annotated[int, Query(ge=1, le=500)]


def _party(p: Principal) -> str | None:
    """The caller's party, None for staff (they act for the desk)."""
    return None if p.has(*STAFF) and p.party_id is None else p.party_id


async def host_call(request: Request, method: str, *args: Any, **kw: Any) -> dict[str, Any]:
    """Call the settlement host; its refusals become problems, its absence a 503."""
    import ray

    g = gw(request)
    handle = getattr(g, "settlement_handle", None)
    try:
        if handle is None:
            handle = g.settlement_handle = ray.get_actor(SETTLEMENT_ACTOR, namespace=g.namespace)
        result: dict[str, Any] = await getattr(handle, method).remote(*args, **kw)
    except Exception as exc:
        log.warning("settlement host call %s failed: %s", method, exc)
        g.settlement_handle = None
        raise Problem(
            "unavailable",
            f"settlement host unavailable ({type(exc).__name__}); retry",
            headers={"Retry-After": "1"},
        ) from None
    err = result.get("error")
    if err:
        code, status = err["code"], int(err["status"])
        slug = "overpayment" if code == "overpayment" else _SLUGS.get(status, "conflict")
        raise Problem(slug, err["detail"], status=status, reason=code)
    return result


def _doc(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


async def _page(
    request: Request,
    table: str,
    key: str,
    order_ts: str,
    p: Principal,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """One keyset page of ``table`` (rows the caller is a party of; staff: all), ordered by
    (``order_ts``, ``key``); ``filters``: column -> value, equality, None = no filter."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in filters.items():
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    party = _party(p)
    if party is not None:
        args.append(party)
        where.append(f"(buyer_id = ${len(args)} OR seller_id = ${len(args)})")
    elif not p.has(*STAFF):
        raise Problem("forbidden", "this key has no party")
    cur = decode_cursor(cursor, 2)
    if cursor and cur is None:
        raise Problem("malformed-request", "bad cursor")
    if cur is not None:
        args += [cur[0], cur[1]]
        where.append(f"({order_ts}, {key}) > (${len(args) - 1}, ${len(args)})")
    sql = f"SELECT {order_ts} AS k1, {key} AS k2, doc FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order_ts}, {key} LIMIT {limit + 1}"
    rows = await gw(request).pool.fetch(sql, *args)
    items = [_doc(r["doc"]) for r in rows[:limit]]
    nxt = encode_cursor([int(rows[limit - 1]["k1"]), rows[limit - 1]["k2"]]) if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


async def _one(request: Request, table: str, key: str, value: str, p: Principal) -> dict[str, Any]:
    r = await gw(request).pool.fetchrow(
        f"SELECT buyer_id, seller_id, doc FROM {table} WHERE {key} = $1", value
    )
    party = _party(p)
    if r is None or (party is not None and party not in (r["buyer_id"], r["seller_id"])):
        raise Problem("not-found", f"no {table[:-1]} {value}")
    doc: dict[str, Any] = _doc(r["doc"])
    return doc


@router.get(
    "/contracts", summary="My contracts", response_model=Page, responses=errors(*AUTHED, 400, 403, 422)
)
async def list_contracts(
    request: Request,
    p: OrderReader,
    allocation_id: Annotated[str | None, TextRule(128)] = None,
    status: Status = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Any:
    """Contracts oldest first; filter by ``allocation_id`` and ``status``."""
    filters = {"allocation_id": allocation_id, "status": status}
    return await _page(request, "contracts", "contract_id", "opened_at", p, filters, cursor, limit)


@router.get(
    "/contracts/{contract_id}",
    summary="One contract",
    response_model=ContractOut,
    responses=errors(*AUTHED, 403, 404, 422),
)
async def get_contract(contract_id: EntityId, request: Request, p: OrderReader) -> Any:
    return await _one(request, "contracts", "contract_id", contract_id, p)


@router.post(
    "/contracts/{contract_id}/deliveries",
    status_code=201,
    summary="Record a delivery (seller)",
    response_model=DeliveryOut,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def deliver(
    contract_id: EntityId, request: Request, p: OrderReader, body: Annotated[DeliveryIn, Body()]
) -> Any:
    """Settled kg within +/-5 % of the contract at the contract price adjusted by the quality claims;
    kg beyond +5 % are refused (``refused_kg``); the invoice is raised at once."""
    check_unit_for_id(body.quantity, contract_id.removeprefix("CT-"))
    party = _party(p)
    if party is not None and not p.has("seller", "trader"):
        raise Problem("forbidden", "only a seller records deliveries")
    idem = request.headers.get("idempotency-key")
    key = f"{p.key_id}:{idem}" if idem else ""
    now = arrival_ms(request)
    return await host_call(
        request,
        "deliver",
        party,
        contract_id,
        body.quantity.kg(),
        dict(body.quality),
        body.delivered_at or now,
        key,
        now,
    )


@router.post(
    "/contracts/{contract_id}/cancel",
    summary="Cancel a contract",
    response_model=ContractOut,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def cancel(
    contract_id: EntityId, request: Request, p: OrderReader, body: Annotated[CancelIn, Body()]
) -> Any:
    now = arrival_ms(request)
    return await host_call(request, "cancel", _party(p), contract_id, body.reason, body.at or now, now)


@router.get("/invoices", summary="My invoices", response_model=Page, responses=errors(*AUTHED, 400, 403, 422))
async def list_invoices(
    request: Request, p: OrderReader, status: Status = None, cursor: Cursor = None, limit: Limit = 100
) -> Any:
    """Invoices oldest first (as buyer or seller); filter by ``status``."""
    return await _page(request, "invoices", "invoice_id", "issued_at", p, {"status": status}, cursor, limit)


@router.get(
    "/invoices/{invoice_id}",
    summary="One invoice",
    response_model=InvoiceOut,
    responses=errors(*AUTHED, 403, 404, 422),
)
async def get_invoice(invoice_id: EntityId, request: Request, p: OrderReader) -> Any:
    return await _one(request, "invoices", "invoice_id", invoice_id, p)


@router.post(
    "/invoices/{invoice_id}/payments",
    status_code=201,
    summary="Pay an invoice (buyer)",
    response_model=PaymentOut,
    responses=errors(*AUTHED, *BODY, 403, 404),
)
async def pay(
    invoice_id: EntityId, request: Request, p: OrderReader, body: Annotated[PaymentIn, Body()]
) -> Any:
    party = _party(p)
    if party is not None and not p.has("buyer", "trader"):
        raise Problem("forbidden", "only a buyer pays invoices")
    now = arrival_ms(request)
    return await host_call(
        request, "pay", party, invoice_id, body.amount, body.payment_ref, body.paid_at or now, now
    )


@router.post(
    "/admin/settlement/sweep",
    response_model=SweepOut,
    summary="End-of-day settlement sweep (operators)",
    responses=errors(*AUTHED, *BODY, 403),
)
async def sweep(request: Request, p: OpsPrincipal, body: Annotated[SweepIn, Body()]) -> Any:
    now = arrival_ms(request)
    return await host_call(request, "sweep", body.as_of or now, now)
