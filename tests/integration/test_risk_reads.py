"""The risk pool's and the risk models' read models on a real PostgreSQL database: empty before the
migrations, typed rows after them."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from ml.datasets import load_pg_orders
from persistence import risk_reads as R
from persistence.migrate import apply_migrations

pytestmark = pytest.mark.integration

T0 = 1_764_000_000_000
DAY = 86_400_000


def test_reads_are_empty_before_the_migrations(pg_dsn: str) -> None:
    assert R.run_sync(pg_dsn, R.settlements, ["B1"]) == []
    assert R.run_sync(pg_dsn, R.open_exposure) == {}
    assert R.run_sync(pg_dsn, R.training_orders, 10) == []
    assert R.run_sync(pg_dsn, R.shadow_scores) == []
    assert load_pg_orders(pg_dsn).empty


async def _fill(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO allocations (allocation_id, shard_id, seq, ts, buy_order_id, sell_order_id,"
            " buyer_id, seller_id, quantity_kg, price)"
            " VALUES ($1, 'IN-GJ.cotton', $2, $3, 'b', 's', $4, $5, $6, $7)",
            [
                ("a1", 1, T0 - 40 * DAY, "B1", "S1", 1000, 7500),  # outside a 30-day window
                ("a2", 2, T0 - 10 * DAY, "B1", "S2", 2000, 7600),
                ("a3", 3, T0, "B2", "S1", 500, 7700),
            ],
        )
        await conn.execute(
            "INSERT INTO ml_settlements"
            " (invoice_id, party_id, invoiced_ts, due_ts, amount, paid_ts, paid_amount)"
            " VALUES ('i1', 'B1', $1, $2, 900000, NULL, 0), ('i2', 'B2', $1, $2, 500000, $3, 500000)",
            T0 - 50 * DAY,
            T0 - 20 * DAY,
            T0 - 25 * DAY,
        )
        await conn.execute(
            "INSERT INTO orders (order_id, shard_id, party_id, client_order_id, side, commodity, region,"
            " quantity_kg, open_kg, price, status, created_ts, last_seq, doc)"
            " VALUES ('o1', 'IN-GJ.cotton', 'B1', 'c1', 'BUY', 'cotton', 'IN-GJ', 10000, 10000, 7600,"
            " 'OPEN', $1, 1, $2::jsonb)",
            T0,
            json.dumps({"max_distance_km": 250.0}),
        )
        await conn.execute(
            "INSERT INTO ml_shadow_scores (ts, model, subject, champion_version, challenger_version,"
            " champion_score, challenger_score) VALUES ($1, 'payment_default', 'B1', '2', '1', 0.25, 0.5)",
            T0,
        )
    finally:
        await conn.close()


def test_typed_rows(pg_dsn: str) -> None:
    apply_migrations(pg_dsn)
    asyncio.run(_fill(pg_dsn))
    rows = R.run_sync(pg_dsn, R.settlements, ["B1", "B2", "NOBODY"])
    assert sorted(rows, key=lambda r: r["party_id"]) == [
        {
            "party_id": "B1",
            "invoiced_ts": T0 - 50 * DAY,
            "due_ts": T0 - 20 * DAY,
            "amount": 900_000,
            "paid_ts": None,
            "paid_amount": 0,
        },
        {
            "party_id": "B2",
            "invoiced_ts": T0 - 50 * DAY,
            "due_ts": T0 - 20 * DAY,
            "amount": 500_000,
            "paid_ts": T0 - 25 * DAY,
            "paid_amount": 500_000,
        },
    ]
    recent = R.run_sync(pg_dsn, R.recent_allocations, 30 * DAY, 10)
    assert recent == [
        R.AllocationRow("S2", "B1", "IN-GJ.cotton", 7600, 2000, T0 - 10 * DAY),
        R.AllocationRow("S1", "B2", "IN-GJ.cotton", 7700, 500, T0),
    ]
    assert R.run_sync(pg_dsn, R.recent_allocations, 30 * DAY, 1) == recent[:1]
    assert R.run_sync(pg_dsn, R.open_exposure) == {"B1": 1000 * 7500 + 2000 * 7600, "B2": 500 * 7700}
    assert R.run_sync(pg_dsn, R.training_orders, 10) == [
        R.TrainingOrder("cotton", "IN-GJ", "B1", 7600, 10_000, T0, 250.0)
    ]
    assert R.run_sync(pg_dsn, R.shadow_scores) == [R.ShadowScoreRow("payment_default", "2", "1", 0.25, 0.5)]
    df = load_pg_orders(pg_dsn)
    assert df[["market", "price", "quantity_kg", "distance_km"]].values.tolist() == [
        ["B1", 7600.0, 10000.0, 250.0]
    ]
