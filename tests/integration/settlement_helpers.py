"""Helpers of the settlement tests: a real shard allocation written to PostgreSQL, pools, ledger
checks against the database."""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.core.engine import ShardEngine
from persistence import event_store as es
from persistence.pg_store import PostgresEventStore
from persistence.projection_store import init_connection, wait_projected
from persistence.projector import Projector
from tests.unit.core_builders import buy, sell

RANGES = {"micronaire": (3.5, 4.9), "strength_gtex": (26.0, 45.0)}
QUALITY = {"micronaire": 4.2, "strength_gtex": 29.0}


async def pool_for(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.create_pool(dsn, min_size=1, max_size=4, init=init_connection)


async def write_allocations(
    pool: Any,
    pairs: list[tuple[str, str, int, int]],
    engine: ShardEngine | None = None,
    ts: int = 1_000,
    region: str = "IN-GJ",
) -> ShardEngine:
    """Place a sell and a matching DIRECT_BUY per ``(seller, buyer, kg, price paise/kg)`` on a
    Gujarat cotton shard, commit the batch's events like a shard does and project them."""
    eng = engine or ShardEngine(region, "cotton")
    store = PostgresEventStore(pool)
    await store.upsert_shard(eng.shard_id, eng.region, "cotton")
    cmds: list[Any] = []
    for i, (seller, buyer, kg, price) in enumerate(pairs):
        n = eng.seq + 2 * i
        cmds.append(sell(f"s{n}", seller, kg, price, ts + 2 * i, quality=QUALITY, city="Rajkot"))
        cmds.append(
            buy(f"b{n}", buyer, kg, price, ts + 2 * i + 1, quality_ranges=RANGES, intent="DIRECT_BUY")
        )
    res = eng.process([dataclasses.replace(c, region=eng.region) for c in cmds])
    assert "ALLOCATED" in {e.type for e in res.events}, [e.type for e in res.events]
    await store.append(es.batch_rows(eng.shard_id, res.events))
    await project(pool, eng.shard_id, eng.region, "cotton")
    return eng


async def project(pool: Any, shard_id: str, region: str, commodity: str) -> None:
    """Bring the shard's projections up to its committed head (what the projector actor does)."""
    proj = Projector(pool)
    while await proj.project_shard(shard_id, region, commodity):
        pass
    head = await PostgresEventStore(pool).max_seq(shard_id)  # a live projector may hold the shard
    assert await wait_projected(pool, {shard_id: head}, 30) == {}


async def db_ledger_check(pool: Any) -> None:
    """Assert on the database: debits == credits; stored balances == recomputed from transfers."""
    async with pool.acquire() as conn:
        sums = await conn.fetchrow(
            "SELECT sum(debits_posted) dp, sum(credits_posted) cp, sum(debits_pending) dd,"
            " sum(credits_pending) cd FROM ledger_accounts"
        )
        assert sums["dp"] == sums["cp"] and sums["dd"] == sums["cd"], dict(sums)
        bad = await conn.fetch(RECOMPUTE_SQL)
        assert bad == [], [dict(r) for r in bad]


# Balances recomputed from ledger_transfers (pending adds, post/void removes the pending amount
# and posts its own amount) compared with the stored ones.
RECOMPUTE_SQL = """
WITH legs AS (
  SELECT t.debit_account AS acct,
         CASE WHEN t.flags & 2 <> 0 THEN t.amount WHEN t.flags & 12 <> 0 THEN -p.amount ELSE 0 END AS dpend,
         CASE WHEN t.flags & 2 <> 0 THEN 0 WHEN t.flags & 8 <> 0 THEN 0 ELSE t.amount END AS dpost,
         0::bigint AS cpend, 0::bigint AS cpost
    FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.transfer_id = t.pending_id
  UNION ALL
  SELECT t.credit_account,
         0, 0,
         CASE WHEN t.flags & 2 <> 0 THEN t.amount WHEN t.flags & 12 <> 0 THEN -p.amount ELSE 0 END,
         CASE WHEN t.flags & 2 <> 0 THEN 0 WHEN t.flags & 8 <> 0 THEN 0 ELSE t.amount END
    FROM ledger_transfers t LEFT JOIN ledger_transfers p ON p.transfer_id = t.pending_id
), r AS (
  SELECT acct, sum(dpend) dp, sum(dpost) dq, sum(cpend) cp, sum(cpost) cq FROM legs GROUP BY acct
)
SELECT a.account_id, a.debits_pending, r.dp, a.debits_posted, r.dq,
       a.credits_pending, r.cp, a.credits_posted, r.cq
  FROM ledger_accounts a FULL JOIN r ON r.acct = a.account_id
 WHERE a.debits_pending IS DISTINCT FROM r.dp OR a.debits_posted IS DISTINCT FROM r.dq
    OR a.credits_pending IS DISTINCT FROM r.cp OR a.credits_posted IS DISTINCT FROM r.cq
"""
