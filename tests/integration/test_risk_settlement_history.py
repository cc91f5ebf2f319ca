"""Settlement history reaches the risk rules: invoices seeded in ``ml_settlements`` (what the
settlement projection writes), then invoices made through the settlement API and swept OVERDUE,
make the risk pool (configured to BLOCK beyond 7 days past due) BLOCK a late buyer and WARN one
overdue at all, for requirements placed through the HTTP gateway."""

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


def _contract(c: Any, allocation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = c.get("/v1/contracts", params={"allocation_id": allocation_id}).json()["items"]
        if items:
            return dict(items[0])
        time.sleep(0.1)
    raise AssertionError(f"no contract for {allocation_id}")


def test_late_buyer_goes_overdue_and_its_next_requirement_is_blocked(gw_risk: Gateway) -> None:
    """Through the settlement API: trade, delivery, invoice, a sweep 10 days past due (OVERDUE);
    the buyer's next requirement finds no allocation (BLOCK, BUYER_PAST_DUE beyond 7 days); paid
    20 days late (inside the 30-day grace: no default), its next one trades cleanly."""
    gw = gw_risk
    seller = gw.party("OD-S", ["seller"], kyc_status="VERIFIED")
    buyer = gw.party("OD-LATE", ["buyer"], kyc_status="VERIFIED")
    region = unique_region()
    with gw.client(seller) as s, gw.client(buyer) as b, gw.client(gw.admin) as ops:
        assert (
            s.post("/v1/orders/availabilities", json=availability("od-a1", region, qty=10)).status_code == 201
        )
        r = b.post("/v1/orders/requirements", json=requirement("od-r1", region, qty=4))
        (alloc,) = r.json()["allocations"]
        assert alloc["risk"]["outcome"] == "PASS"
        ct = _contract(b, alloc["allocation_id"])
        delivered_at = ct["delivery_from"] + DAY_MS
        body = {
            "quantity": {"value": 4, "unit": "tonne"},
            "quality": {"staple_length_mm": 29.0, "micronaire": 4.2, "strength_gtex": 30.0},
            "delivered_at": delivered_at,
        }
        r = s.post(f"/v1/contracts/{ct['contract_id']}/deliveries", json=body)
        assert r.status_code == 201, r.text
        inv = r.json()["invoice"]
        assert inv["amount"] == 4000 * 7000 and inv["due_at"] == delivered_at + 30 * DAY_MS
        r = ops.post("/v1/admin/settlement/sweep", json={"as_of": inv["due_at"] + 10 * DAY_MS})
        assert r.status_code == 200, r.text
        got = b.get(f"/v1/invoices/{inv['invoice_id']}").json()
        assert (got["status"], got["outstanding"]) == ("OVERDUE", 28_000_000)

        # the next requirement rests without allocation: risk BLOCKed the pair
        r = b.post("/v1/orders/requirements", json=requirement("od-r2", region, qty=2))
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "ACCEPTED" and r.json()["allocations"] == []
        ts = int(time.time() * 1000)
        v = gw.risk.decide(
            RiskRequest([RiskQuery("BO", "SO", "OD-LATE", "OD-S", "cotton", region, 2000, 7000, ts)])
        )
        d = v.get("BO", "SO")
        assert d is not None and d.outcome == Outcome.BLOCK
        assert d.reasons == (Reason.BUYER_PAST_DUE, Reason.BUYER_OVERDUE)

        # paid in full 20 days after due: trades again, nothing left to flag
        pay = {"amount": inv["amount"], "payment_ref": "UTR-OD-1", "paid_at": inv["due_at"] + 20 * DAY_MS}
        r = b.post(f"/v1/invoices/{inv['invoice_id']}/payments", json=pay)
        assert r.status_code == 201 and r.json()["invoice"]["status"] == "PAID", r.text
        r = b.post("/v1/orders/requirements", json=requirement("od-r3", region, qty=1))
        (alloc,) = r.json()["allocations"]
        assert alloc["quantity_kg"] == 1000
        assert (alloc["risk"]["outcome"], alloc["risk"]["reasons"]) == ("PASS", [])
