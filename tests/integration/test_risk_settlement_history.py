"""Settlement history reaches the risk rules: invoices seeded in ``ml_settlements`` (what the
settlement projection writes) make the risk pool BLOCK a buyer with an invoice past due beyond 30
days and WARN one overdue at all, for requirements placed through the HTTP gateway."""

from __future__ import annotations

import time
from typing import Any

import psycopg2
import pytest

from actors.core.risk.rules import Reason
from actors.core.risk.standing import DAY_MS
from actors.core.risk.types import Outcome, RiskQuery, RiskRequest
from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration


def _seed(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ml_settlements (invoice_id, party_id, allocation_id, invoiced_ts, due_ts,"
                " amount, paid_ts, paid_amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    finally:
        conn.close()


def test_late_buyer_is_blocked_overdue_buyer_warned_clean_buyer_trades(gw_risk: Gateway, pg_dsn: str) -> None:
    gw = gw_risk
    now = int(time.time() * 1000)
    keys = {
        p: gw.party(p, [role], kyc_status="VERIFIED")
        for p, role in (("SH-S", "seller"), ("SH-LATE", "buyer"), ("SH-WARN", "buyer"), ("SH-OK", "buyer"))
    }
    _seed(
        pg_dsn,
        [  # SH-LATE: 45 days past due, 1,234,500 paise outstanding of 2,000,000
            ("INV-L1", "SH-LATE", "A-L1", now - 75 * DAY_MS, now - 45 * DAY_MS, 2_000_000, None, 765_500),
            # SH-WARN: 5 days past due, nothing else
            ("INV-W1", "SH-WARN", "A-W1", now - 35 * DAY_MS, now - 5 * DAY_MS, 500_000, None, 0),
            # SH-OK: paid on time
            (
                "INV-O1",
                "SH-OK",
                "A-O1",
                now - 60 * DAY_MS,
                now - 30 * DAY_MS,
                900_000,
                now - 31 * DAY_MS,
                900_000,
            ),
        ],
    )
    region = unique_region()
    with gw.client(keys["SH-S"]) as s:
        r = s.post("/v1/orders/availabilities", json=availability("sh-a1", region, qty=20))
        assert r.status_code == 201, r.text
    out: dict[str, dict[str, Any]] = {}
    for buyer in ("SH-LATE", "SH-WARN", "SH-OK"):
        with gw.client(keys[buyer]) as b:
            r = b.post("/v1/orders/requirements", json=requirement(f"sh-{buyer}", region, qty=4))
            assert r.status_code == 201, r.text
            out[buyer] = r.json()
    # the late buyer's requirement is accepted and rests: risk BLOCKed every candidate
    assert out["SH-LATE"]["status"] == "ACCEPTED" and out["SH-LATE"]["allocations"] == []
    # the others trade 4 t each against the same availability; the overdue buyer with a WARN
    for buyer, outcome, reasons in (
        ("SH-WARN", "WARN", [Reason.BUYER_OVERDUE]),
        ("SH-OK", "PASS", []),
    ):
        (alloc,) = out[buyer]["allocations"]
        assert alloc["quantity_kg"] == 4000 and alloc["price"] == 7000
        assert (alloc["risk"]["outcome"], alloc["risk"]["reasons"]) == (outcome, reasons)
    # the decision the shard got for the late buyer's pair, with its reasons
    v = gw.risk.decide(
        RiskRequest([RiskQuery("BO", "SO", "SH-LATE", "SH-S", "cotton", region, 4000, 7000, now + 1000)])
    )
    d = v.get("BO", "SO")
    assert d is not None and d.outcome == Outcome.BLOCK
    assert d.reasons == (Reason.BUYER_PAST_DUE, Reason.BUYER_OVERDUE, Reason.BUYER_DEFAULT_HISTORY)

    # the late buyer pays in full: its next requirement trades (default history: WARN only)
    conn = psycopg2.connect(pg_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE ml_settlements SET paid_ts = %s, paid_amount = amount WHERE invoice_id = 'INV-L1'",
                (now,),
            )
    finally:
        conn.close()
    with gw.client(keys["SH-LATE"]) as b:
        r = b.post("/v1/orders/requirements", json=requirement("sh-late-2", region, qty=2))
        assert r.status_code == 201, r.text
    (alloc,) = r.json()["allocations"]
    assert alloc["quantity_kg"] == 2000
    assert (alloc["risk"]["outcome"], alloc["risk"]["reasons"]) == ("WARN", [Reason.BUYER_DEFAULT_HISTORY])
