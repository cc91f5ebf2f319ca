"""HTTP end to end, one trade: allocation -> contract -> delivery with a micronaire discount ->
invoice -> partial payment -> overpayment refused -> full payment -> exposure back to zero, with
exact amounts; a mutually cancelled contract voids its pending transfers; ml_settlements follows."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import db_rows, unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration
PT = "urn:tradedesk:problem:"
N = 1700 * 16000  # contracted notional, paise
A = 1700 * (16000 - 433)  # invoiced after the micronaire 5.1 discount of 433 paise/kg (-223 pts/lb)


@pytest.fixture(scope="module")
def sgw(ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from tests.conftest import REDIS_URL

    prefix = f"tdst:{uuid.uuid4().hex[:8]}:"
    g = Gateway(
        pg_dsn,
        REDIS_URL,
        tmp_path_factory.mktemp("keys"),
        runtime={"key_prefix": prefix, "settlement_tail_s": 0.1, "settlement_sweep_s": 0},
    )
    yield g
    g.stop()


def _contract(c: httpx.Client, allocation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = c.get("/v1/contracts", params={"allocation_id": allocation_id}).json()["items"]
        if items:
            return dict(items[0])
        time.sleep(0.1)
    raise AssertionError(f"no contract for {allocation_id}")


async def _settlement_events(g: Gateway, token: str, cid: str, expect_none: bool = False) -> list[str]:
    """Types of the settlement events of ``cid`` that ``token``'s WebSocket replays from seq 0."""
    import websockets

    url = g.base.replace("http://", "ws://") + "/v1/stream"
    types: list[str] = []
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(await ws.recv())["op"] == "welcome"
        await ws.send(
            json.dumps({"op": "subscribe", "channel": "mine", "shard_id": "settlement", "from_seq": 0})
        )
        while True:
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 1.5 if expect_none else 10))
            except TimeoutError:
                return types
            if m.get("op") == "event" and m["payload"].get("contract_id") == cid:
                types.append(m["type"])
                if m["type"] == "INVOICE_PAID":
                    return types


def _trade(g: Gateway, s: httpx.Client, b: httpx.Client, tag: str) -> dict[str, Any]:
    region = unique_region()
    r = s.post(
        "/v1/orders/availabilities", json=availability(f"a{tag}", region, price=16000, qty=10, unit="bale")
    )
    assert r.status_code == 201, r.text
    r = b.post(
        "/v1/orders/requirements", json=requirement(f"r{tag}", region, price=16000, qty=10, unit="bale")
    )
    assert r.status_code == 201, r.text
    (alloc,) = r.json()["allocations"]
    assert (alloc["quantity_kg"], alloc["price"]) == (1700, 16000)
    return _contract(b, alloc["allocation_id"])


def test_one_trade_end_to_end(sgw: Gateway, pg_dsn: str) -> None:
    seller = sgw.party("SELLER-E2E", ["seller"])
    buyer = sgw.party("BUYER-E2E", ["buyer"])
    other = sgw.party("OTHER-E2E", ["buyer"])
    with sgw.client(seller) as s, sgw.client(buyer) as b, sgw.client(other) as o:
        ct = _trade(sgw, s, b, "1")
        cid = ct["contract_id"]
        assert cid == "CT-" + ct["allocation_id"] and ct["status"] == "OPEN"
        assert ct["quality_ranges"] == {"micronaire": [3.5, 4.9]} and ct["payment_terms_days"] == 30
        assert o.get(f"/v1/contracts/{cid}").status_code == 404
        assert b.get("/v1/ledger/balances").json()["exposure"] == N
        # the buyer cannot record a delivery; the seller can
        r = b.post(f"/v1/contracts/{cid}/deliveries", json={"quantity": {"value": 10, "unit": "bale"}})
        assert r.status_code == 403, r.text
        body = {
            "quantity": {"value": 10, "unit": "bale"},
            "quality": {"micronaire": 5.1, "strength_gtex": 29.5},
            "delivered_at": ct["delivery_from"] + 86_400_000,
        }
        r = s.post(f"/v1/contracts/{cid}/deliveries", json=body, headers={"Idempotency-Key": "dlv-1"})
        assert r.status_code == 201, r.text
        d = r.json()
        assert (d["delivery_id"], d["settled_kg"], d["refused_kg"]) == (f"{cid}-D1", 1700, 0)
        assert [(a["parameter"], a["paise_per_kg"]) for a in d["adjustments"]] == [("micronaire", -433)]
        assert "USDA FSA" in d["adjustments"][0]["rule"] and d["adjusted_price"] == 15567
        inv = d["invoice"]
        assert (inv["invoice_id"], inv["amount"], inv["status"]) == (f"INV-{cid}-D1", A, "ISSUED")
        assert inv["due_at"] == body["delivered_at"] + 30 * 86_400_000
        assert b.get("/v1/ledger/balances").json()["exposure"] == A
        pay = f"/v1/invoices/{inv['invoice_id']}/payments"
        r = b.post(pay, json={"amount": 10_000_000, "payment_ref": "UTR-E2E-1", "paid_at": inv["due_at"] - 1})
        assert r.status_code == 201, r.text
        assert r.json()["invoice"]["outstanding"] == A - 10_000_000
        assert r.json()["invoice"]["status"] == "PARTIALLY_PAID"
        assert b.get("/v1/ledger/balances").json()["exposure"] == A - 10_000_000
        r = b.post(pay, json={"amount": A - 10_000_000 + 1, "payment_ref": "UTR-E2E-2"})
        assert r.status_code == 409 and r.json()["type"] == PT + "overpayment"
        # the same payment_ref again returns the original payment, applied once
        r = b.post(pay, json={"amount": 10_000_000, "payment_ref": "UTR-E2E-1", "paid_at": inv["due_at"] - 1})
        assert r.status_code == 201 and r.json()["replayed"] is True
        r = b.post(pay, json={"amount": A - 10_000_000, "payment_ref": "UTR-E2E-2", "paid_at": inv["due_at"]})
        assert r.status_code == 201, r.text
        assert r.json()["invoice"]["status"] == "PAID" and r.json()["invoice"]["outstanding"] == 0
        bal = b.get("/v1/ledger/balances").json()
        assert bal["exposure"] == 0
        acct = {a["kind"]: a for a in bal["accounts"]}
        assert acct["payable"]["credits_posted"] == A and acct["payable"]["debits_posted"] == A
        assert acct["cash"]["credits_posted"] == A
        sbal = {a["kind"]: a for a in s.get("/v1/ledger/balances").json()["accounts"]}
        assert sbal["receivable"]["net"] == 0 and sbal["cash"]["net"] == A
        assert b.get(f"/v1/contracts/{cid}").json()["status"] == "PAID"
        assert (
            b.get("/v1/invoices", params={"status": "PAID"}).json()["items"][0]["invoice_id"]
            == inv["invoice_id"]
        )
        ml = db_rows(pg_dsn, "SELECT * FROM ml_settlements WHERE invoice_id = %s", inv["invoice_id"])[0]
        assert (ml["party_id"], ml["amount"], ml["paid_amount"], ml["paid_ts"]) == (
            "BUYER-E2E",
            A,
            A,
            inv["due_at"],
        )
        # the buyer's WebSocket: its contract and invoice events on the mine channel of "settlement"
        got = asyncio.run(_settlement_events(sgw, buyer, cid))
        assert got == ["CONTRACT_OPENED", "DELIVERY_RECORDED", "INVOICE_ISSUED", "PAYMENT_RECEIVED",
                       "PAYMENT_RECEIVED", "INVOICE_PAID"]  # fmt: skip
        assert asyncio.run(_settlement_events(sgw, other, cid, expect_none=True)) == []
        # statement: cursor pages cover every transfer once
        seen, cursor = [], None
        while True:
            page = b.get(
                "/v1/ledger/statement", params={"limit": 3, **({"cursor": cursor} if cursor else {})}
            ).json()
            seen += [t["transfer_id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) >= 8
        ageing = s.get("/v1/ledger/ageing", params={"as_of": inv["due_at"] + 40 * 86_400_000}).json()
        assert sum(ageing["receivables"].values()) == 0

        # a second trade, cancelled by both parties: its pending transfers are voided
        ct2 = _trade(sgw, s, b, "2")
        c2 = ct2["contract_id"]
        assert b.get("/v1/ledger/balances").json()["exposure"] == N
        assert b.get("/v1/ledger/positions").json()["positions"][0]["long_kg"] == 1700
        r = b.post(f"/v1/contracts/{c2}/cancel", json={"reason": "MUTUAL"})
        assert r.status_code == 200 and r.json()["status"] == "OPEN", r.text
        r = s.post(f"/v1/contracts/{c2}/cancel", json={"reason": "MUTUAL"})
        assert r.status_code == 200 and r.json()["status"] == "CANCELLED", r.text
        assert b.get("/v1/ledger/balances").json()["exposure"] == 0
        rows = db_rows(
            pg_dsn,
            "SELECT transfer_id, flags, pending_id FROM ledger_transfers WHERE contract_id = %s"
            " ORDER BY seq, transfer_id",
            c2,
        )
        pending = {r["transfer_id"] for r in rows if r["flags"] == 2}
        voided = {r["pending_id"] for r in rows if r["flags"] == 8}
        assert len(pending) == 2 and voided == pending
        r = s.post(f"/v1/contracts/{c2}/deliveries", json={"quantity": {"value": 1, "unit": "bale"}})
        assert r.status_code == 409 and r.json()["reason"] == "contract_not_open"
