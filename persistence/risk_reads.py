"""Read models of the risk pool and the risk models: every SELECT they run, with typed rows.

The risk pool's replicas (``actors.risk_pool``) read through an asyncpg pool; training and the
``models shadow-report`` command (``ml/``, the gateway CLI) are synchronous and use
:func:`run_sync`, which opens one connection for the call. Parties are read by
:meth:`persistence.parties.PartyRepository.get_many` (the one parties query).

Units: money in paise, quantities in kg, prices in paise/kg, timestamps epoch milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypedDict, TypeVar

SETTLEMENTS_SQL = (
    "SELECT party_id, invoiced_ts, due_ts, amount, paid_ts, paid_amount FROM ml_settlements"
    " WHERE party_id = ANY($1::text[])"
)
#: Invoices a buyer paid late or not at all: what the settlement-history rules need (rows paid on
#: time change nothing in :func:`actors.core.risk.standing.standing_from_rows`), each with the
#: buyer's desk time: its latest settlement fact (an invoice issued or paid, a sweep's OVERDUE or
#: DEFAULTED verdict in ``invoices``, migration 0008). The plain form serves databases before 0008.
LATE_SETTLEMENTS_SQL = """
SELECT * FROM (
    SELECT s.party_id, s.invoiced_ts, s.due_ts, s.amount, s.paid_ts, s.paid_amount,
           MAX(GREATEST(s.invoiced_ts, COALESCE(s.paid_ts, 0), COALESCE(i.overdue_at, 0),
                        COALESCE(i.defaulted_at, 0))) OVER (PARTITION BY s.party_id) AS desk_ts
      FROM ml_settlements s LEFT JOIN invoices i ON i.invoice_id = s.invoice_id
     WHERE s.party_id = ANY($1::text[])
) x WHERE paid_ts IS NULL OR paid_ts > due_ts
"""
LATE_SETTLEMENTS_PLAIN_SQL = (
    "SELECT party_id, invoiced_ts, due_ts, amount, paid_ts, paid_amount, 0::bigint AS desk_ts"
    " FROM ml_settlements WHERE party_id = ANY($1::text[]) AND (paid_ts IS NULL OR paid_ts > due_ts)"
)
ALL_SETTLEMENTS_SQL = (
    "SELECT invoice_id, party_id, invoiced_ts, due_ts, amount, paid_ts, paid_amount FROM ml_settlements"
    " ORDER BY invoiced_ts, invoice_id"
)
PARTY_LIMITS_SQL = "SELECT party_id, credit_limit FROM parties"
RECENT_ALLOCATIONS_SQL = (
    "SELECT seller_id, buyer_id, shard_id, price, quantity_kg, ts FROM allocations"
    " WHERE ts >= (SELECT COALESCE(MAX(ts), 0) FROM allocations) - $1 ORDER BY ts LIMIT $2"
)
EXPOSURE_SQL = """
SELECT buyer_id, SUM(notional)::bigint AS exposure FROM (
    SELECT buyer_id, quantity_kg * price AS notional FROM allocations
    UNION ALL
    SELECT o.party_id AS buyer_id, r.quantity_kg * r.price AS notional
      FROM reservations r JOIN orders o ON o.order_id = r.buy_order_id
     WHERE r.status = 'RESERVED'
) x GROUP BY buyer_id
"""
# Exposure with the ledger (migration 0007; PostgreSQL is the source of truth): the balance of each
# buyer's exposure account (undelivered contract notional + invoiced - paid), plus allocations the
# settlement host has not opened a contract for yet, plus live reservations.
LEDGER_EXPOSURE_SQL = """
SELECT buyer_id, SUM(notional)::bigint AS exposure FROM (
    SELECT party_id AS buyer_id,
           debits_posted + debits_pending - credits_posted - credits_pending AS notional
      FROM ledger_accounts WHERE kind = 'exposure' AND party_id <> 'DESK'
    UNION ALL
    SELECT a.buyer_id, a.quantity_kg * a.price AS notional FROM allocations a
     WHERE NOT EXISTS (SELECT 1 FROM contracts c WHERE c.allocation_id = a.allocation_id)
    UNION ALL
    SELECT o.party_id AS buyer_id, r.quantity_kg * r.price AS notional
      FROM reservations r JOIN orders o ON o.order_id = r.buy_order_id
     WHERE r.status = 'RESERVED'
) x GROUP BY buyer_id
"""
TRAINING_ORDERS_SQL = (
    "SELECT commodity, region, party_id, price, quantity_kg, created_ts,"
    " (doc->>'max_distance_km')::float8 AS distance_km FROM orders"
    " ORDER BY created_ts DESC NULLS LAST LIMIT $1"
)
SHADOW_SCORES_SQL = (
    "SELECT model, champion_version, challenger_version, champion_score, challenger_score"
    " FROM ml_shadow_scores"
)


class Fetcher(Protocol):
    """An asyncpg ``Pool`` or ``Connection`` (anything with ``fetch``)."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


class SettlementRow(TypedDict):
    """One invoice a buyer owes (``ml_settlements``): paise, epoch ms; ``paid_ts`` None while unpaid."""

    party_id: str
    invoiced_ts: int
    due_ts: int
    amount: int
    paid_ts: int | None
    paid_amount: int


class LateSettlementRow(SettlementRow):
    """A :class:`SettlementRow` unpaid or paid late, with ``desk_ts``: the buyer's latest settlement
    fact (epoch ms; 0 when unknown)."""

    desk_ts: int


class AllocationRow(NamedTuple):
    """One allocation for the circular-trading history: price paise/kg, quantity kg, ts epoch ms."""

    seller_id: str
    buyer_id: str
    shard_id: str
    price: int
    quantity_kg: int
    ts: int


class TrainingOrder(NamedTuple):
    """One exchange order as training data: price paise/kg, quantity kg, created epoch ms (or None),
    ``distance_km`` the order's maximum distance when it has one."""

    commodity: str
    region: str
    party_id: str
    price: int
    quantity_kg: int
    created_ts: int | None
    distance_km: float | None


class ShadowScoreRow(NamedTuple):
    """One shadow-scored row: champion and challenger versions and scores."""

    model: str
    champion_version: str
    challenger_version: str
    champion_score: float
    challenger_score: float


async def _fetch_or_empty(db: Fetcher, sql: str, *args: object) -> list[Any]:
    """Rows of ``sql``; none when its table does not exist yet (a database before the migration)."""
    try:
        return await db.fetch(sql, *args)
    except Exception as exc:
        if type(exc).__name__ == "UndefinedTableError":
            return []
        raise


def _settlement_rows(rows: list[Any]) -> list[SettlementRow]:
    return [
        SettlementRow(
            party_id=r["party_id"],
            invoiced_ts=int(r["invoiced_ts"]),
            due_ts=int(r["due_ts"]),
            amount=int(r["amount"]),
            paid_ts=None if r["paid_ts"] is None else int(r["paid_ts"]),
            paid_amount=int(r["paid_amount"]),
        )
        for r in rows
    ]


async def settlements(db: Fetcher, party_ids: Sequence[str]) -> list[SettlementRow]:
    """Invoices of ``party_ids`` (any order). Empty before migration 0004."""
    if not party_ids:
        return []
    return _settlement_rows(await _fetch_or_empty(db, SETTLEMENTS_SQL, list(party_ids)))


async def late_settlements(db: Fetcher, party_ids: Sequence[str]) -> dict[str, list[LateSettlementRow]]:
    """Invoices of ``party_ids`` still unpaid or paid after their due date, per party (parties with
    none are absent), with the buyer's desk time: the input of the settlement-history rules. Empty
    before migration 0004; without desk times (0) before migration 0008."""
    out: dict[str, list[LateSettlementRow]] = {}
    if not party_ids:
        return out
    try:
        rows = await db.fetch(LATE_SETTLEMENTS_SQL, list(party_ids))
    except Exception as exc:
        if type(exc).__name__ != "UndefinedTableError":
            raise
        rows = await _fetch_or_empty(db, LATE_SETTLEMENTS_PLAIN_SQL, list(party_ids))
    for r, row in zip(rows, _settlement_rows(rows), strict=True):
        late = LateSettlementRow(**row, desk_ts=int(r["desk_ts"] or 0))
        out.setdefault(late["party_id"], []).append(late)
    return out


async def desk_settlements(db: Fetcher) -> tuple[list[tuple[str, SettlementRow]], dict[str, int]]:
    """Every invoice of ``ml_settlements`` as ``(invoice_id, row)`` in issue order, and every party's
    credit limit (paise; parties without one absent): the desk's own training data. Empty when the
    tables are missing."""
    rows = await _fetch_or_empty(db, ALL_SETTLEMENTS_SQL)
    limits = await _fetch_or_empty(db, PARTY_LIMITS_SQL)
    invoices = [str(r["invoice_id"]) for r in rows]
    return (
        list(zip(invoices, _settlement_rows(rows), strict=True)),
        {str(r["party_id"]): int(r["credit_limit"]) for r in limits if r["credit_limit"] is not None},
    )


async def recent_allocations(db: Fetcher, window_ms: int, limit: int) -> list[AllocationRow]:
    """Allocations of the last ``window_ms`` before the newest one, oldest first, at most ``limit``."""
    rows = await db.fetch(RECENT_ALLOCATIONS_SQL, int(window_ms), int(limit))
    return [
        AllocationRow(r["seller_id"], r["buyer_id"], r["shard_id"], r["price"], r["quantity_kg"], r["ts"])
        for r in rows
    ]


async def open_exposure(db: Fetcher) -> dict[str, int]:
    """Open exposure per buyer, paise: the ledger's exposure accounts (undelivered contracts,
    invoiced not paid), allocations without a contract yet and reservations still ``RESERVED``
    (:data:`LEDGER_EXPOSURE_SQL`). Before migration 0007 (no ledger tables): every allocation's
    notional plus the reservations. Empty when no table exists yet (before migration 0001)."""
    try:
        rows = await db.fetch(LEDGER_EXPOSURE_SQL)
    except Exception as exc:
        if type(exc).__name__ != "UndefinedTableError":
            raise
        rows = await _fetch_or_empty(db, EXPOSURE_SQL)
    return {r["buyer_id"]: int(r["exposure"]) for r in rows}


async def training_orders(db: Fetcher, limit: int = 200_000) -> list[TrainingOrder]:
    """The newest ``limit`` orders of the ``orders`` projection. Empty when the table is missing."""
    return [TrainingOrder(*tuple(r)) for r in await _fetch_or_empty(db, TRAINING_ORDERS_SQL, int(limit))]


async def shadow_scores(db: Fetcher) -> list[ShadowScoreRow]:
    """Every shadow-scoring record. Empty when the table is missing."""
    return [ShadowScoreRow(*tuple(r)) for r in await _fetch_or_empty(db, SHADOW_SCORES_SQL)]


T = TypeVar("T")


def run_sync(dsn: str, read: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one read model ``read(connection, *args)`` on a fresh connection to ``dsn`` from
    synchronous code (training, CLI). Raises what asyncpg raises (e.g. ``OSError`` when the server is
    unreachable)."""

    async def go() -> T:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return await read(conn, *args)
        finally:
            await conn.close()

    return asyncio.run(go())
