"""The settlement host on real PostgreSQL and Redis (no Ray): contracts opened once from committed
allocations, a delivery with a micronaire discount, invoice, payments, exposure in Redis, the ledger
and read models in the database, recovery from the log, the commit-time balance trigger."""

from __future__ import annotations

from typing import Any

import pytest

from actors.core.posttrade.ledger import DESK
from actors.settlement_service import SettlementService
from persistence.exposure import ExposureStore
from persistence.migrate import apply_migrations
from persistence.risk_reads import open_exposure
from persistence.settlement_store import PostgresSettlementStore
from tests.integration.settlement_helpers import db_ledger_check, pool_for, write_allocations

pytestmark = pytest.mark.integration


async def _service(pool: Any, exposure: Any = None) -> SettlementService:
    svc = SettlementService(PostgresSettlementStore(pool), exposure=exposure)
    await svc.start()
    return svc


async def test_one_trade_through_the_host(pg_dsn: str, redis_url: str, key_prefix: str) -> None:
    apply_migrations(pg_dsn)
    pool = await pool_for(pg_dsn)
    exposure = ExposureStore.from_url(redis_url, key_prefix)
    try:
        eng = await write_allocations(pool, [("S1", "B1", 1700, 16000)])
        exposure.adjust({"B1": 1700 * 16000})  # what the shard counted at allocation
        svc = await _service(pool, exposure)
        assert await svc.catch_up() == 1
        assert await svc.catch_up() == 0  # idempotent: one contract per allocation
        (cid,) = svc.engine.state.contracts
        terms = svc.engine.state.contracts[cid].terms
        assert terms.quality_ranges == {"micronaire": (3.5, 4.9), "strength_gtex": (26.0, 45.0)}
        assert terms.delivery_point["city"] == "Rajkot"
        d = await svc.deliver("S1", cid, 1700, {"micronaire": 5.1}, delivered_at=terms.delivery_from + 1000)
        assert d["adjusted_price"] == 15567 and d["invoice"]["amount"] == 26_463_900
        assert exposure.get(["B1"]) == {"B1": 26_463_900}
        inv = d["invoice"]["invoice_id"]
        p1 = await svc.pay("B1", inv, 10_000_000, "UTR-1", paid_at=terms.delivery_from + 2000)
        assert p1["invoice"]["outstanding"] == 16_463_900
        over = await svc.pay("B1", inv, 16_463_901, "UTR-2")
        assert over["error"]["code"] == "overpayment" and over["error"]["status"] == 409
        await svc.pay("B1", inv, 16_463_900, "UTR-2", paid_at=terms.delivery_from + 3000)
        assert exposure.get(["B1"]) == {"B1": 0}
        async with pool.acquire() as conn:
            ml = await conn.fetchrow("SELECT * FROM ml_settlements WHERE invoice_id = $1", inv)
            status = await conn.fetchval("SELECT status FROM contracts WHERE contract_id = $1", cid)
            n_pay = await conn.fetchval("SELECT count(*) FROM payments WHERE invoice_id = $1", inv)
            b_exp = await conn.fetchrow("SELECT * FROM ledger_accounts WHERE account_id = 'B1:exposure'")
        assert (ml["party_id"], ml["amount"], ml["paid_amount"]) == ("B1", 26_463_900, 26_463_900)
        assert ml["paid_ts"] == terms.delivery_from + 3000 and ml["allocation_id"] == terms.allocation_id
        assert status == "PAID" and n_pay == 2
        assert (
            b_exp["debits_posted"] + b_exp["debits_pending"]
            == b_exp["credits_posted"] + b_exp["credits_pending"]
        )
        await db_ledger_check(pool)
        # a restarted host recovers the same state from the log; a retried payment is not applied twice
        again = await _service(pool, exposure)
        assert again.engine.state.ledger == svc.engine.state.ledger
        assert (await again.pay("B1", inv, 10_000_000, "UTR-1"))["replayed"] is True
        assert await again.catch_up() == 0
        await write_allocations(pool, [("S2", "B2", 1000, 15000)], engine=eng, ts=5_000)
        assert await again.catch_up() == 1
        assert again.engine.state.ledger.exposure("B2") == 15_000_000
        assert DESK + ":exposure" in again.engine.state.ledger.accounts
        # the Redis cache is rebuilt from the ledger: B1 paid everything, B2 owes its open contract
        assert await open_exposure(pool) == {"B1": 0, "B2": 15_000_000}
        await db_ledger_check(pool)
    finally:
        await pool.close()


async def test_cancel_voids_pending_and_the_trigger_refuses_an_unbalanced_commit(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    pool = await pool_for(pg_dsn)
    try:
        svc = await _service(pool)
        await svc.catch_up()
        await write_allocations(pool, [("S3", "B3", 500, 10000)], ts=9_000, region="IN-MH")
        assert await svc.catch_up() == 1
        cid = next(c for c, v in svc.engine.state.contracts.items() if v.terms.buyer_id == "B3")
        assert (await svc.cancel(None, cid, "OPERATOR"))["status"] == "CANCELLED"
        async with pool.acquire() as conn:
            voids = await conn.fetch(
                "SELECT pending_id FROM ledger_transfers WHERE contract_id = $1 AND flags & 8 <> 0", cid
            )
            pend = await conn.fetch(
                "SELECT transfer_id FROM ledger_transfers WHERE contract_id = $1 AND flags & 2 <> 0", cid
            )
            assert sorted(r[0] for r in voids) == sorted(r[0] for r in pend) and len(pend) == 2
            b3 = await conn.fetchrow("SELECT * FROM ledger_accounts WHERE account_id = 'B3:exposure'")
            assert (b3["debits_pending"], b3["debits_posted"]) == (0, 0)
            with pytest.raises(Exception, match="ledger unbalanced"):
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE ledger_accounts SET debits_posted = debits_posted + 1"
                        " WHERE account_id = 'B3:exposure'"
                    )
                    await conn.execute(
                        "INSERT INTO ledger_commits (seq, transfers, ts) VALUES (999999, 0, 0)"
                    )
        await db_ledger_check(pool)
    finally:
        await pool.close()


async def test_sweep_marks_overdue_then_defaulted_in_the_read_models(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    pool = await pool_for(pg_dsn)
    day = 86_400_000
    try:
        svc = await _service(pool)
        await write_allocations(pool, [("S4", "B4", 200, 12000)], ts=20_000, region="IN-RJ")
        await svc.catch_up()
        cid = next(c for c, v in svc.engine.state.contracts.items() if v.terms.buyer_id == "B4")
        at = svc.engine.state.contracts[cid].opened_at + 5
        d = await svc.deliver("S4", cid, 200, {}, at)
        inv, due = d["invoice"]["invoice_id"], d["invoice"]["due_at"]
        await svc.pay("B4", inv, 400_000, "B4-1", at + 1)
        r = await svc.sweep(due + 3 * day)
        assert r["overdue"] >= 1
        q = (
            "SELECT i.status AS inv, c.status AS ct, i.overdue_at"
            " FROM invoices i JOIN contracts c USING (contract_id)"
        )
        async with pool.acquire() as conn:
            row = await conn.fetchrow(q + " WHERE invoice_id = $1", inv)
            assert (row["inv"], row["ct"], row["overdue_at"]) == ("OVERDUE", "OVERDUE", due + 3 * day)
            await svc.sweep(due + 31 * day)
            row = await conn.fetchrow(q + " WHERE invoice_id = $1", inv)
            assert (row["inv"], row["ct"]) == ("DEFAULTED", "DEFAULTED")
            ml = await conn.fetchrow("SELECT * FROM ml_settlements WHERE invoice_id = $1", inv)
            assert (ml["amount"], ml["paid_amount"], ml["paid_ts"], ml["due_ts"]) == (
                2_400_000,
                400_000,
                None,
                due,
            )
    finally:
        await pool.close()


async def test_wall_clock_sweep_only_for_a_live_desk(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    pool = await pool_for(pg_dsn)
    try:
        svc = await _service(pool)  # recovered: its newest command is this module's last one
        t = svc.business_time()
        assert t == max(
            r["ts"] for r in await pool.fetch("SELECT ts FROM events WHERE shard_id = 'settlement'")
        )
        assert svc.wall_sweep_due(t + 86_400_000)
        assert not svc.wall_sweep_due(t + 46 * 86_400_000)  # a log of the past: no wall-clock sweep
    finally:
        await pool.close()
