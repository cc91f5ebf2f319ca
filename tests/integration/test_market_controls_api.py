"""Market controls through the HTTP API over real Ray actors, PostgreSQL and Redis (docs/operators.md,
"Market controls"): an operator halts a shard (a new order gets SHARD_HALTED, a cancel is taken,
the shard list shows the halt), resumes it; sets a price band (PRICE_OUT_OF_BAND); the circuit
breaker halts a shard by itself; the kill switch cancels a party's orders in two shards; the CLI does
the same; the events are in the log and replay to the same market status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import db_events, replay, unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    with gw.client(gw.admin) as a:
        r = a.post("/v1/admin/api-keys", json={"roles": ["operator"], "label": "market ops"})
        assert r.status_code == 201, r.text
        operator = r.json()["token"]
    return {
        "seller": gw.party("MS1", ["seller"], kyc_status="VERIFIED"),
        "buyer": gw.party("MB1", ["buyer"], kyc_status="VERIFIED"),
        "operator": operator,
    }


def shard_row(c: httpx.Client, sid: str) -> dict[str, Any]:
    r = c.get("/v1/admin/shards")
    assert r.status_code == 200, r.text
    return {x["shard_id"]: x for x in r.json()["items"]}[sid]


def test_halt_rejects_new_orders_takes_cancels_and_resume_lifts_it(
    gw: Gateway, keys: dict[str, str], pg_dsn: str
) -> None:
    region = unique_region()
    sid = f"{region}.cotton"
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["operator"]) as op:
        r = s.post("/v1/orders/availabilities", json=availability("h1", region, price=7500))
        assert r.status_code == 201, r.text
        resting = r.json()["order_id"]
        r = s.post(f"/v1/admin/shards/{sid}/halt", json={"reason": "x"})
        assert r.status_code == 403 and r.json()["type"] == PT + "forbidden"
        r = op.post(f"/v1/admin/shards/{sid}/halt", json={"reason": "exchange drill"})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["shard_id"], got["changed"], got["halted"], got["halt_kind"]) == (
            sid,
            True,
            True,
            "OPERATOR",
        )
        assert (got["halt_reason"], got["halted_until"]) == ("exchange drill", None)
        row = shard_row(op, sid)
        assert (row["halted"], row["halt_reason"], row["halted_until"]) == (True, "exchange drill", None)
        r = b.post("/v1/orders/requirements", json=requirement("h2", region, price=7600))
        assert r.status_code == 422 and r.json()["type"] == PT + "order-rejected"
        assert r.json()["reason"] == "SHARD_HALTED" and "exchange drill" in r.json()["detail"]
        # the resting order is kept and its owner may still cancel it
        assert s.get(f"/v1/orders/{resting}").json()["status"] == "OPEN"
        r = s.post(f"/v1/orders/{resting}/cancel")
        assert r.status_code == 200 and r.json()["cancelled_kg"] == 10_000
        r = op.post(f"/v1/admin/shards/{sid}/resume")
        assert r.status_code == 200, r.text
        assert (r.json()["halted"], r.json()["resumed_halt"], r.json()["status"]) == (False, True, "UP")
        r = b.post("/v1/orders/requirements", json=requirement("h3", region, price=7600))
        assert r.status_code == 201 and r.json()["status"] == "ACCEPTED"
        assert shard_row(op, sid)["halted"] is False
        assert op.post("/v1/admin/shards/ZZ-ZZ.cotton/halt", json={}).status_code == 404
    events = db_events(pg_dsn, sid)
    kinds = [e.type for e in events]
    assert kinds == [
        "ORDER_ACCEPTED",
        "SHARD_HALTED",
        "ORDER_REJECTED",
        "CANCELLED",
        "SHARD_RESUMED",
        "ORDER_ACCEPTED",
    ]
    assert events[2].payload.reason == "SHARD_HALTED"
    assert replay(region, "cotton", events).market_status()["halted"] is False


def test_price_band_api_and_the_circuit_breaker(gw: Gateway, keys: dict[str, str], pg_dsn: str) -> None:
    region = unique_region()
    sid = f"{region}.cotton"
    path = f"/v1/admin/shards/{sid}/price-band"
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["operator"]) as op:
        assert s.post("/v1/orders/availabilities", json=availability("p1", region, qty=1)).status_code == 201
        # no market reference outside India: no band until an operator sets one
        r = op.get(path)
        assert r.status_code == 200 and r.json()["low_paise_per_kg"] is None and r.json()["mode"] == "default"
        r = op.put(path, json={"mode": "range", "min_paise_per_kg": 6000, "max_paise_per_kg": 8000})
        assert r.status_code == 200, r.text
        assert (r.json()["low_paise_per_kg"], r.json()["high_paise_per_kg"]) == (6000, 8000)
        assert op.get(path).json()["high_paise_per_kg"] == 8000
        r = s.post("/v1/orders/availabilities", json=availability("p2", region, price=8100, qty=1))
        assert r.status_code == 422 and r.json()["reason"] == "PRICE_OUT_OF_BAND"
        assert "6,000..8,000 paise/kg" in r.json()["detail"]
        for bad in (
            {"mode": "range", "min_paise_per_kg": 9000, "max_paise_per_kg": 8000},
            {"mode": "percent"},
        ):
            r = op.put(path, json=bad)
            assert r.status_code == 422 and r.json()["type"] == PT + "validation-error"
        assert op.put("/v1/admin/shards/ZZ-ZZ.cotton/price-band", json={"mode": "off"}).status_code == 404
        assert s.get(path).status_code == 403
        # circuit breaker: a trade at 7000, then one at 7800 (11.4 % within 15 min) halts the shard
        r = b.post("/v1/orders/requirements", json=requirement("p3", region, price=7000, qty=1))
        assert r.status_code == 201 and r.json()["allocations"][0]["price"] == 7000
        assert (
            s.post(
                "/v1/orders/availabilities", json=availability("p4", region, price=7800, qty=1)
            ).status_code
            == 201
        )
        r = b.post("/v1/orders/requirements", json=requirement("p5", region, price=7800, qty=1))
        assert r.status_code == 201 and r.json()["allocations"][0]["price"] == 7800
        row = shard_row(op, sid)
        assert row["halted"] is True and row["halt_kind"] == "CIRCUIT_BREAKER"
        assert row["trigger"]["trade_price"] == 7800 and row["trigger"]["reference_price"] == 7000
        assert row["halted_until"] - row["halted_since"] == 15 * 60_000
        r = b.post("/v1/orders/requirements", json=requirement("p6", region, price=7800, qty=1))
        assert r.status_code == 422 and r.json()["reason"] == "SHARD_HALTED"
        assert op.post(f"/v1/admin/shards/{sid}/resume").json()["resumed_halt"] is True
    events = db_events(pg_dsn, sid)
    assert [e.type for e in events].count("SHARD_HALTED") == 1
    assert replay(region, "cotton", events).market_status()["price_band"]["high_paise_per_kg"] == 8000


def test_kill_switch_cancels_a_partys_orders_in_two_shards_and_the_cli(
    gw: Gateway, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.operator_cli import main as shards_main
    from gateway.parties_cli import main as parties_main

    r1, r2 = unique_region(), unique_region()
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["operator"]) as op:
        ids = []
        for coid, region in (("k1", r1), ("k2", r1), ("k3", r2)):
            r = s.post("/v1/orders/availabilities", json=availability(coid, region, price=9000, qty=2))
            assert r.status_code == 201, r.text
            ids.append(r.json()["order_id"])
        r = b.post("/v1/orders/requirements", json=requirement("k4", r2, price=6000, qty=1))
        assert r.status_code == 201
        buyer_order = r.json()["order_id"]
        assert b.post("/v1/admin/parties/MS1/kill-switch").status_code == 403
        assert op.post("/v1/admin/parties/NOBODY/kill-switch").status_code == 404
        r = op.post("/v1/admin/parties/MS1/kill-switch")
        assert r.status_code == 200, r.text
        body = r.json()
        per = {x["shard_id"]: x for x in body["shards"]}
        assert (per[f"{r1}.cotton"]["cancelled_orders"], per[f"{r1}.cotton"]["cancelled_kg"]) == (2, 4000)
        assert (per[f"{r2}.cotton"]["cancelled_orders"], per[f"{r2}.cotton"]["cancelled_kg"]) == (1, 2000)
        assert sorted(per[f"{r1}.cotton"]["order_ids"]) == sorted(ids[:2])
        assert body["complete"] is True
        assert body["cancelled_orders"] >= 3  # other tests' shards hold none of MS1's open orders
        for oid in ids:
            assert s.get(f"/v1/orders/{oid}").json()["status"] == "CANCELLED"
        assert b.get(f"/v1/orders/{buyer_order}").json()["status"] == "OPEN"
    common = ["--gateway", gw.base, "--api-key-file", str(gw.key_file)]
    sid = f"{r2}.cotton"
    assert shards_main([*common, "halt", sid, "--reason", "cli drill"]) == 0
    assert f"{sid}: HALTED (OPERATOR: cli drill)" in capsys.readouterr().out
    assert shards_main([*common, "band", sid, "--min", "5000", "--max", "9000"]) == 0
    assert "5,000..9,000 paise/kg" in capsys.readouterr().out
    assert shards_main([*common, "band", sid, "--percent", "5", "--off"]) == 2
    capsys.readouterr()
    assert shards_main([*common, "resume", sid]) == 0
    assert sid in capsys.readouterr().out
    assert parties_main([*common, "kill-switch", "MB1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("MB1: ") and f"\n  {r2}.cotton: 1 orders, 1,000 kg\n" in out
    assert parties_main([*common, "kill-switch", "NOBODY"]) == 1
    assert "error 404" in capsys.readouterr().err
