"""Ledger reads (PostgreSQL, the source of truth): balances, statement, positions, ageing, PnL.

- ``GET /v1/ledger/balances``: my accounts (cash, receivable, payable, goods_in_transit, exposure)
  with TigerBeetle's four balances and the net (debits - credits), paise; operators may pass
  ``party_id`` (``DESK`` for the desk's clearing accounts).
- ``GET /v1/ledger/statement?cursor=``: the transfers on my accounts in commit order, cursor
  pagination.
- ``GET /v1/ledger/positions``: contracted kg still to be delivered per commodity and shard.
- ``GET /v1/ledger/ageing?as_of=``: outstanding receivables and payables by days past due.
- ``GET /v1/ledger/pnl``: realised and mark-to-market PnL per commodity against the latest
  Agmarknet modal price shipped in ``data/agmarknet`` (:mod:`actors.core.posttrade.reports`).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from actors.core.posttrade.ledger import KINDS, account_id
from actors.core.posttrade.reports import ageing, pnl, positions
from gateway.auth import STAFF, OrderReader, Principal
from gateway.edge.text import TextRule
from gateway.problems import Problem
from gateway.responses import AUTHED, errors
from gateway.routes_orders import arrival_ms, decode_cursor, encode_cursor, gw
from gateway.schemas_settlement import AgeingOut, BalancesOut, Page, PnlOut, PositionsOut

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
PartyQ = Annotated[str | None, TextRule(128)]


def _subject(p: Principal, party_id: str | None) -> str:
    if p.party_id is not None and (party_id is None or party_id == p.party_id):
        return p.party_id
    if p.has(*STAFF) and party_id:
        return party_id
    raise Problem("forbidden" if party_id else "malformed-request", "name a party_id (operators only)")


@router.get(
    "/balances",
    response_model=BalancesOut,
    summary="Ledger balances",
    responses=errors(*AUTHED, 400, 403, 422),
)
async def balances(request: Request, p: OrderReader, party_id: PartyQ = None) -> Any:
    """``{"party_id", "accounts": [{account_id, kind, flags, debits_pending, debits_posted,
    credits_pending, credits_posted, net}], "exposure"}``."""
    party = _subject(p, party_id)
    rows = await gw(request).pool.fetch(
        "SELECT account_id, kind, flags, debits_pending, debits_posted, credits_pending, credits_posted"
        " FROM ledger_accounts WHERE party_id = $1 ORDER BY kind",
        party,
    )
    accounts = []
    for r in rows:
        d = dict(r)
        d["net"] = d["debits_posted"] + d["debits_pending"] - d["credits_posted"] - d["credits_pending"]
        accounts.append(d)
    exposure = next((a["net"] for a in accounts if a["kind"] == "exposure"), 0)
    return {"party_id": party, "accounts": accounts, "exposure": exposure}


@router.get(
    "/statement",
    summary="Statement of my accounts",
    response_model=Page,
    responses=errors(*AUTHED, 400, 403, 422),
)
async def statement(
    request: Request,
    p: OrderReader,
    party_id: PartyQ = None,
    cursor: Annotated[str | None, TextRule(512)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    """Transfers debiting or crediting one of the party's accounts, in commit order (seq, id)."""
    party = _subject(p, party_id)
    cur = decode_cursor(cursor, 2)
    if cursor and cur is None:
        raise Problem("malformed-request", "bad cursor")
    after_seq, after_id = (int(cur[0]), str(cur[1])) if cur else (-1, "")
    rows = await gw(request).pool.fetch(
        "SELECT transfer_id, seq, debit_account, credit_account, amount, flags, pending_id, code,"
        " contract_id, ts"
        " FROM ledger_transfers WHERE (debit_account = ANY($1::text[]) OR credit_account = ANY($1::text[]))"
        " AND (seq, transfer_id) > ($2, $3) ORDER BY seq, transfer_id LIMIT $4",
        [account_id(party, k) for k in KINDS],
        after_seq,
        after_id,
        limit + 1,
    )
    items = [dict(r) for r in rows[:limit]]
    nxt = encode_cursor([items[-1]["seq"], items[-1]["transfer_id"]]) if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


async def _party_rows(request: Request, table: str, party: str) -> list[dict[str, Any]]:
    rows = await gw(request).pool.fetch(f"SELECT * FROM {table} WHERE buyer_id = $1 OR seller_id = $1", party)
    return [dict(r) for r in rows]


@router.get(
    "/positions",
    response_model=PositionsOut,
    summary="Open positions per commodity and shard",
    responses=errors(*AUTHED, 400, 403, 422),
)
async def open_positions(request: Request, p: OrderReader, party_id: PartyQ = None) -> Any:
    party = _subject(p, party_id)
    return {"party_id": party, "positions": positions(await _party_rows(request, "contracts", party), party)}


@router.get(
    "/ageing",
    response_model=AgeingOut,
    summary="Receivables and payables ageing",
    responses=errors(*AUTHED, 400, 403, 422),
)
async def receivables_ageing(
    request: Request,
    p: OrderReader,
    party_id: PartyQ = None,
    as_of: Annotated[int | None, Query(ge=0, lt=2**53)] = None,
) -> Any:
    party = _subject(p, party_id)
    rows = await _party_rows(request, "invoices", party)
    return {"party_id": party, **ageing(rows, party, as_of if as_of is not None else arrival_ms(request))}


@functools.lru_cache(maxsize=1)
def agmarknet_reference() -> dict[str, int]:
    """Latest modal price (paise/kg) per commodity in the shipped Agmarknet files (median over
    the markets reporting on the latest day)."""
    from persistence.agmarknet import default_agmarknet_paths, load_price_points

    points = load_price_points(default_agmarknet_paths())
    latest: dict[str, Any] = {}
    for pt in points:
        latest[pt.commodity] = max(latest.get(pt.commodity, pt.day), pt.day)
    out: dict[str, int] = {}
    for c, day in latest.items():
        prices = sorted(pt.price for pt in points if pt.commodity == c and pt.day == day)
        out[c] = prices[len(prices) // 2]
    return out


@router.get(
    "/pnl",
    response_model=PnlOut,
    summary="Realised and mark-to-market PnL",
    responses=errors(*AUTHED, 400, 403, 422),
)
async def trader_pnl(request: Request, p: OrderReader, party_id: PartyQ = None) -> Any:
    party = _subject(p, party_id)
    g = gw(request)
    invoices = await g.pool.fetch(
        "SELECT i.*, c.commodity, (d.doc->>'settled_kg')::bigint AS settled_kg FROM invoices i"
        " JOIN contracts c USING (contract_id) JOIN deliveries d USING (delivery_id)"
        " WHERE i.buyer_id = $1 OR i.seller_id = $1",
        party,
    )
    inv = [dict(r) for r in invoices]
    reference = await asyncio.to_thread(agmarknet_reference)
    rows = pnl(
        inv,
        await _party_rows(request, "contracts", party),
        party,
        reference,
        {r["delivery_id"]: int(r["settled_kg"]) for r in inv},
    )
    return {
        "party_id": party,
        "reference": "Agmarknet modal price, latest day in data/agmarknet",
        "pnl": rows,
    }
