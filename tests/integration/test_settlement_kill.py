"""Kill the settlement host mid-stream and fail its commits: no acknowledged delivery or payment is
lost, none is applied twice.

- Ray: deliveries and payments stream into the ``settlement`` actor while it is killed twice
  (it restarts, ``max_restarts=-1``, and recovers from the log); the client retries a failed call
  with the same delivery key / payment_ref, as an HTTP client retries a 503.
- Store outages without restarting the shared PostgreSQL: a commit that fails (nothing written), a
  commit whose acknowledgement is lost after it was written, and a stale (fenced) second writer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from actors.core.ids import SETTLEMENT_STREAM
from actors.settlement_service import SettlementService, SettlementUnavailable
from persistence.migrate import apply_migrations
from persistence.settlement_rows import SettlementRows
from persistence.settlement_store import PostgresSettlementStore
from persistence.store import CommitFailed, CommitOutcomeUnknown
from tests.integration.conftest import db_rows, kill_namespace, start_test_runtime, unique_region
from tests.integration.settlement_helpers import db_ledger_check, pool_for, write_allocations

pytestmark = pytest.mark.integration
KG, PRICE = 1000, 15000
AMOUNT = KG * PRICE  # no quality claim: quality inside the contracted ranges


FAILED_CALLS: list[str] = []


def _retry(method: Any, *args: Any) -> dict[str, Any]:
    """Call until answered, as a client retries a 503 with the same key / payment_ref."""
    import ray

    for _ in range(200):
        try:
            result: dict[str, Any] = ray.get(method.remote(*args), timeout=30)
            return result
        except (ray.exceptions.RayError, TimeoutError) as exc:
            FAILED_CALLS.append(type(exc).__name__)
            time.sleep(0.1)
    raise AssertionError("settlement host did not come back")


def test_killed_host_loses_nothing_and_applies_nothing_twice(ray_session: None, pg_dsn: str) -> None:
    import ray

    region = unique_region()
    n = 12
    rt = start_test_runtime(pg_dsn, None, settlement_tail_s=0.1, settlement_sweep_s=0)
    try:

        async def seed() -> None:
            pool = await pool_for(pg_dsn)
            try:
                await write_allocations(
                    pool, [(f"KS{i}", f"KB{i}", KG, PRICE) for i in range(n)], region=region
                )
            finally:
                await pool.close()

        asyncio.run(seed())
        host = rt.settlement
        deadline = time.monotonic() + 30
        while ray.get(host.catch_up.remote()) >= 0:
            contracts = db_rows(
                pg_dsn,
                "SELECT contract_id, seller_id, buyer_id, opened_at FROM contracts"
                " WHERE shard_id = %s ORDER BY contract_id",
                f"{region}.cotton",
            )
            if len(contracts) == n or time.monotonic() > deadline:
                break
        assert len(contracts) == n
        acked: list[tuple[str, dict[str, Any]]] = []

        def stream() -> None:
            for c in contracts:
                cid, at = c["contract_id"], c["opened_at"] + 1000
                d = _retry(host.deliver, c["seller_id"], cid, KG, {"micronaire": 4.0}, at, f"k-{cid}")
                acked.append(("delivery", d))
                inv = d["invoice"]["invoice_id"]
                for part, amount in ((1, AMOUNT // 3), (2, AMOUNT - AMOUNT // 3)):
                    p = _retry(host.pay, c["buyer_id"], inv, amount, f"U-{cid}-{part}", at + part)
                    assert "error" not in p, p
                    acked.append(("payment", p))

        t = threading.Thread(target=stream)
        t.start()
        for _ in range(2):  # kill it twice while the stream runs
            time.sleep(0.4)
            ray.kill(ray.get_actor("settlement", namespace=rt.namespace), no_restart=False)
        t.join(timeout=240)
        assert not t.is_alive()
        assert len(acked) == 3 * n
        deliveries = db_rows(pg_dsn, "SELECT contract_id, count(*) AS n FROM deliveries GROUP BY 1")
        assert {r["contract_id"]: r["n"] for r in deliveries} == {c["contract_id"]: 1 for c in contracts}
        payments = db_rows(
            pg_dsn, "SELECT invoice_id, count(*) AS n, sum(amount) AS s FROM payments GROUP BY 1"
        )
        assert len(payments) == n and all(r["n"] == 2 and r["s"] == AMOUNT for r in payments)
        invoices = db_rows(pg_dsn, "SELECT status, paid, amount FROM invoices")
        assert all(r["status"] == "PAID" and r["paid"] == r["amount"] == AMOUNT for r in invoices)
        seqs = [
            r["seq"]
            for r in db_rows(
                pg_dsn, "SELECT seq FROM events WHERE shard_id = %s ORDER BY seq", SETTLEMENT_STREAM
            )
        ]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) == n * 6  # opened, delivery, invoice, 2 payments, paid
        assert FAILED_CALLS, "the kills did not hit the stream"
    finally:
        kill_namespace(rt.namespace)


class _Flaky(PostgresSettlementStore):
    """Fails the next append: ``mode`` "fail" (nothing written) or "lost-ack" (written, then the
    acknowledgement is lost)."""

    mode = ""

    async def append(self, rows: SettlementRows) -> int:
        mode, self.mode = self.mode, ""
        if mode == "fail":
            raise CommitFailed("injected: connection refused")
        out = await super().append(rows)
        if mode == "lost-ack":
            raise CommitOutcomeUnknown("injected: connection lost during COMMIT")
        return out


async def test_failed_lost_and_fenced_commits(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    pool = await pool_for(pg_dsn)
    try:
        store = _Flaky(pool)
        svc = SettlementService(store)
        await svc.start()
        region = unique_region()
        await write_allocations(pool, [("FS", "FB", KG, PRICE)], region=region, ts=2_000)
        await svc.catch_up()
        cid = next(c for c, v in svc.engine.state.contracts.items() if v.terms.buyer_id == "FB")
        at = svc.engine.state.contracts[cid].opened_at + 10
        store.mode = "fail"
        with pytest.raises(SettlementUnavailable):
            await svc.deliver("FS", cid, KG, {}, at, "key-1")
        assert svc.engine.state.contracts[cid].deliveries == []  # rolled back to the log
        d = await svc.deliver("FS", cid, KG, {}, at, "key-1")
        inv = d["invoice"]["invoice_id"]
        store.mode = "lost-ack"
        p = await svc.pay("FB", inv, 1000, "LOST-1", at)  # written: the host sees its seq committed
        assert p["invoice"]["paid"] == 1000
        assert (await svc.pay("FB", inv, 1000, "LOST-1", at))["replayed"] is True
        # a stale second writer: fenced, nothing written, it recovers and the retry applies once
        stale = SettlementService(PostgresSettlementStore(pool))
        await stale.start()
        await svc.pay("FB", inv, 2000, "P-2", at)
        with pytest.raises(SettlementUnavailable):
            await stale.pay("FB", inv, 3000, "P-3", at)
        assert (await stale.pay("FB", inv, 3000, "P-3", at))["invoice"]["paid"] == 6000
        rows = db_rows(
            pg_dsn, "SELECT payment_ref, amount FROM payments WHERE invoice_id = %s ORDER BY seq", inv
        )
        assert [(r["payment_ref"], r["amount"]) for r in rows] == [
            ("LOST-1", 1000),
            ("P-2", 2000),
            ("P-3", 3000),
        ]
        await db_ledger_check(pool)
        fresh = SettlementService(PostgresSettlementStore(pool))
        await fresh.start()
        assert fresh.engine.state.ledger == stale.engine.state.ledger
    finally:
        await pool.close()
