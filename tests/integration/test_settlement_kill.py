"""Kill the settlement host mid-stream and fail its commits: no acknowledged delivery or payment is
lost, none is applied twice.

- Ray: deliveries and payments stream into the ``settlement`` actor while it is killed twice
  (it restarts, ``max_restarts=-1``, and recovers from the log); the client retries a failed call
  with the same delivery key / payment_ref, as an HTTP client retries a 503.
- PostgreSQL itself restarts mid-stream (stopped with ``pg_ctlcluster``, started again): nothing is
  acknowledged while it is down, the host recovers by itself once it is back.
- Store outages without restarting PostgreSQL: a commit that fails (nothing written), a commit
  whose acknowledgement is lost after it was written, and a stale (fenced) second writer.
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
from tests.integration.pg_control import pg_online, pg_start_if_down, pg_stop
from tests.integration.settlement_helpers import db_ledger_check, pool_for, write_allocations

pytestmark = pytest.mark.integration
KG, PRICE = 1000, 15000
AMOUNT = KG * PRICE  # no quality claim: quality inside the contracted ranges
Acked = list[tuple[str, dict[str, Any]]]  # ("delivery" | "payment", the host's answer)


def _retry(method: Any, failed: list[str], *args: Any) -> dict[str, Any]:
    """Call until answered, as a client retries a 503 with the same key / payment_ref; each failed
    call's error type goes to ``failed``."""
    import ray

    for _ in range(200):
        try:
            result: dict[str, Any] = ray.get(method.remote(*args), timeout=30)
            return result
        except (ray.exceptions.RayError, TimeoutError) as exc:
            failed.append(type(exc).__name__)
            time.sleep(0.1)
    raise AssertionError("settlement host did not come back")


def _open_contracts(host: Any, pg_dsn: str, region: str, n: int) -> list[dict[str, Any]]:
    """Commit ``n`` cotton allocations of ``region`` and tail them into contracts on ``host``."""
    import ray

    async def seed() -> None:
        pool = await pool_for(pg_dsn)
        try:
            await write_allocations(pool, [(f"KS{i}", f"KB{i}", KG, PRICE) for i in range(n)], region=region)
        finally:
            await pool.close()

    asyncio.run(seed())
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
    return contracts


def _stream(host: Any, contracts: list[dict[str, Any]], acked: Acked, failed: list[str]) -> None:
    """Per contract: deliver it whole, then pay its invoice in two parts, each call retried."""
    for c in contracts:
        cid, at = c["contract_id"], c["opened_at"] + 1000
        d = _retry(host.deliver, failed, c["seller_id"], cid, KG, {"micronaire": 4.0}, at, f"k-{cid}")
        assert "error" not in d, d
        acked.append(("delivery", d))
        inv = d["invoice"]["invoice_id"]
        for part, amount in ((1, AMOUNT // 3), (2, AMOUNT - AMOUNT // 3)):
            p = _retry(host.pay, failed, c["buyer_id"], inv, amount, f"U-{cid}-{part}", at + part)
            assert "error" not in p, p
            acked.append(("payment", p))


def _start_stream(
    host: Any, pg_dsn: str, n: int
) -> tuple[list[dict[str, Any]], Acked, list[str], threading.Thread]:
    """Open ``n`` contracts in a fresh region and start :func:`_stream` on them in a thread:
    ``(contracts, acked answers, failed calls, thread)``."""
    contracts = _open_contracts(host, pg_dsn, unique_region(), n)
    acked: Acked = []
    failed: list[str] = []
    t = threading.Thread(target=_stream, args=(host, contracts, acked, failed), daemon=True)
    t.start()
    return contracts, acked, failed, t


def _assert_settled_once(pg_dsn: str, contracts: list[dict[str, Any]], acked: Acked) -> list[int]:
    """Every acknowledged delivery and payment is in the database exactly once, every invoice is
    paid to the paisa, the settlement stream is gap-free; returns its seqs."""
    n, cids = len(contracts), [c["contract_id"] for c in contracts]
    assert len(acked) == 3 * n
    deliveries = db_rows(
        pg_dsn, "SELECT delivery_id, contract_id FROM deliveries WHERE contract_id = ANY(%s)", cids
    )
    assert sorted((r["delivery_id"], r["contract_id"]) for r in deliveries) == sorted(
        (d["delivery_id"], d["contract_id"]) for kind, d in acked if kind == "delivery"
    )
    payments = db_rows(
        pg_dsn,
        "SELECT p.buyer_id, p.payment_ref, p.invoice_id, p.amount FROM payments p"
        " JOIN invoices i USING (invoice_id) WHERE i.contract_id = ANY(%s)",
        cids,
    )
    acked_payments = [p["payment"] for kind, p in acked if kind == "payment"]
    assert sorted(
        (r["buyer_id"], r["payment_ref"], r["invoice_id"], r["amount"]) for r in payments
    ) == sorted((p["buyer_id"], p["payment_ref"], p["invoice_id"], p["amount"]) for p in acked_payments)
    invoices = db_rows(pg_dsn, "SELECT status, paid, amount FROM invoices WHERE contract_id = ANY(%s)", cids)
    assert len(invoices) == n
    assert all(r["status"] == "PAID" and r["paid"] == r["amount"] == AMOUNT for r in invoices)
    seqs = [
        r["seq"]
        for r in db_rows(pg_dsn, "SELECT seq FROM events WHERE shard_id = %s ORDER BY seq", SETTLEMENT_STREAM)
    ]
    assert seqs == list(range(1, len(seqs) + 1))
    return seqs


def test_killed_host_loses_nothing_and_applies_nothing_twice(ray_session: None, pg_dsn: str) -> None:
    import ray

    n = 12
    rt = start_test_runtime(pg_dsn, None, settlement_tail_s=0.1, settlement_sweep_s=0)
    try:
        contracts, acked, failed, t = _start_stream(rt.settlement, pg_dsn, n)
        for after in (3, 3 * n // 2):  # kill it twice mid-stream: after the 3rd and the (3n/2)th answer
            while len(acked) < after and t.is_alive():
                time.sleep(0.001)
            ray.kill(ray.get_actor("settlement", namespace=rt.namespace), no_restart=False)
        t.join(timeout=240)
        assert not t.is_alive()
        seqs = _assert_settled_once(pg_dsn, contracts, acked)
        assert len(seqs) == n * 6  # opened, delivery, invoice, 2 payments, paid
        assert failed, "the kills did not hit the stream"
    finally:
        kill_namespace(rt.namespace)


def test_postgres_restart_loses_no_acknowledged_settlement(ray_session: None, pg_dsn: str) -> None:
    """PostgreSQL itself stops (``-m fast``) mid-stream and starts again: nothing is acknowledged
    while it is down, the host recovers by itself, nothing acknowledged is lost or applied twice
    and the ledger balances in the database."""
    import ray

    assert pg_online()
    n = 10
    rt = start_test_runtime(pg_dsn, None, settlement_tail_s=0.1, settlement_sweep_s=0)
    try:
        host = rt.settlement
        contracts, acked, failed, t = _start_stream(host, pg_dsn, n)
        try:
            while len(acked) < 8 and t.is_alive():
                time.sleep(0.001)
            assert len(acked) < 3 * n
            pg_stop()
            time.sleep(1.0)  # calls made now must fail, not be acknowledged
            n_acked_down = len(acked)
            time.sleep(1.0)
            assert len(acked) == n_acked_down  # nothing acknowledged while PostgreSQL is down
            assert failed, "no call hit the outage"
        finally:
            pg_start_if_down()
        t.join(timeout=240)
        assert not t.is_alive()
        assert pg_online()
        _assert_settled_once(pg_dsn, contracts, acked)
        # the first call the outage hit failed its commit (engine rolled back); later ones could
        # not recover from the log until PostgreSQL was back
        assert "RayTaskError(SettlementUnavailable)" in failed, failed
        info = ray.get(host.ping.remote())
        assert info["failures"] >= 1 and info["recoveries"] >= 2, info

        async def ledger() -> None:
            pool = await pool_for(pg_dsn)
            try:
                await db_ledger_check(pool)
            finally:
                await pool.close()

        asyncio.run(ledger())
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
