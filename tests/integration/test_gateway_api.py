"""HTTP API against the real gateway (uvicorn on 127.0.0.1) over real Ray actors, PostgreSQL and
Redis: every endpoint, cross-party access, idempotency replays, rate limits and overload."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    return {
        "seller": gw.party("S1", ["seller"], kyc_status="VERIFIED", pan="ABCDE1234F"),
        "buyer": gw.party("B1", ["buyer"], kyc_status="VERIFIED", pan="PQRSX6789K"),
        "buyer2": gw.party("B2", ["buyer"], kyc_status="VERIFIED"),
        "trader": gw.party("T1", ["trader"], kyc_status="VERIFIED"),
    }


def test_ops_and_auth(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["postgres"] == "ok"
        assert "tradedesk_http_request_seconds" in c.get("/metrics").text
        r = c.get("/v1/orders")
        assert r.status_code == 401 and r.json()["type"] == PT + "unauthenticated"
        assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/v1/orders", headers={"Authorization": "Bearer td_nope_nope"}).status_code == 401
    with gw.client(keys["buyer"]) as c:
        r = c.get("/v1/admin/shards")
        assert r.status_code == 403 and r.json()["type"] == PT + "forbidden"
        region = unique_region()
        r = c.post("/v1/orders/availabilities", json=availability("x1", region))
        assert r.status_code == 403  # a buyer key cannot sell


def test_validation_problem_lists_fields(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client(keys["seller"]) as c:
        bad = availability("v1", "gujarat", qty=-1, unit="furlong")
        bad["surprise"] = True
        r = c.post("/v1/orders/availabilities", json=bad)
        assert r.status_code == 422
        body = r.json()
        assert body["type"] == PT + "validation-error"
        locs = {tuple(e["loc"]) for e in body["errors"]}
        assert ("body", "location", "region") in locs and ("body", "surprise") in locs
        assert "Traceback" not in r.text
        r = c.post(
            "/v1/orders/availabilities", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["type"] == PT + "malformed-request"


def test_place_match_get_list_cancel_amend(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["buyer2"]) as b2:
        r = s.post("/v1/orders/availabilities", json=availability("a1", region, qty=60, unit="bale"))
        assert r.status_code == 201, r.text
        sell = r.json()
        assert sell["status"] == "ACCEPTED" and sell["shard_id"] == f"{region}.cotton"
        # same client order id again: the original result
        r = s.post("/v1/orders/availabilities", json=availability("a1", region, qty=60, unit="bale"))
        assert r.status_code == 200 and r.json()["duplicate"] and r.json()["order_id"] == sell["order_id"]
        r = b.post("/v1/orders/requirements", json=requirement("r1", region, qty=4, unit="tonne"))
        assert r.status_code == 201, r.text
        buy = r.json()
        assert len(buy["allocations"]) == 1
        alloc = buy["allocations"][0]
        assert alloc["quantity_kg"] == 4000 and alloc["price"] == 7000
        assert "breakdown" in alloc and "risk" in alloc

        o = s.get(f"/v1/orders/{sell['order_id']}").json()
        assert o["quantity_kg"] == 10200 and o["allocated_kg"] == 4000 and o["open_kg"] == 6200
        # another party cannot see or touch it
        assert b2.get(f"/v1/orders/{sell['order_id']}").status_code == 404
        r = b2.post(f"/v1/orders/{sell['order_id']}/cancel")
        assert r.status_code == 404 and r.json()["type"] == PT + "not-found"
        with gw.client(keys["trader"]) as t:
            assert (
                t.post(f"/v1/orders/{sell['order_id']}/amend", json={"price_paise_per_kg": 1}).status_code
                == 404
            )
        assert b2.get("/v1/orders/O-XX-YY.cotton-1").status_code == 404
        assert b2.get("/v1/orders/garbage").status_code == 404

        # list mine with cursor pagination
        for i in range(3):
            assert (
                s.post(
                    "/v1/orders/availabilities", json=availability(f"p{i}", region, price=9000 + i)
                ).status_code
                == 201
            )
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "side": "SELL"}
            if cursor:
                params["cursor"] = cursor
            page = s.get("/v1/orders", params=params).json()
            seen += [x["order_id"] for x in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) >= 4 and sell["order_id"] in seen
        assert all(x["order_id"] not in seen for x in b.get("/v1/orders").json()["items"])
        assert s.get("/v1/orders", params={"cursor": "!!"}).status_code == 400

        r = s.post(f"/v1/orders/{sell['order_id']}/amend", json={"price_paise_per_kg": 7100})
        assert r.status_code == 200 and r.json()["priority_lost"] is True, r.text
        assert s.post(f"/v1/orders/{sell['order_id']}/amend", json={}).status_code == 422
        r = s.post(f"/v1/orders/{sell['order_id']}/cancel")
        assert r.status_code == 200 and r.json()["cancelled_kg"] == 6200
        r = s.post(f"/v1/orders/{sell['order_id']}/cancel")
        assert r.status_code == 409 and r.json()["reason"] == "ORDER_CLOSED"

        # allocations: mine, one with audit trail, not someone else's
        items = b.get("/v1/allocations").json()["items"]
        assert alloc["allocation_id"] in [a["allocation_id"] for a in items]
        a = b.get(f"/v1/allocations/{alloc['allocation_id']}").json()
        types = [e["type"] for e in a["audit"]["events"]]
        assert "ALLOCATED" in types and types.count("ORDER_ACCEPTED") == 2 and a["risk"] is not None
        assert s.get(f"/v1/allocations/{alloc['allocation_id']}").status_code == 200
        assert b2.get(f"/v1/allocations/{alloc['allocation_id']}").status_code == 404
        assert alloc["allocation_id"] not in [
            x["allocation_id"] for x in b2.get("/v1/allocations").json()["items"]
        ]


def test_batch_market_data_and_search(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["trader"]) as t, gw.client(keys["buyer"]) as b:
        orders = [
            {"side": "SELL", **availability(f"bs{i}", region, price=7000 + 10 * i, qty=2)} for i in range(5)
        ]
        orders.append({"side": "BUY", **requirement("bb0", region, price=6500, qty=1)})
        r = t.post("/v1/orders/batch", json={"orders": orders})
        assert r.status_code == 200, r.text
        res = r.json()["results"]
        assert len(res) == 6 and all(x["status"] == "ACCEPTED" for x in res)
        assert t.post("/v1/orders/batch", json={"orders": []}).status_code == 422
        top = b.get(f"/v1/market/{region}/cotton/top").json()
        assert top["ask"] == 7000 and top["bid"] == 6500 and top["ask_kg"] == 2000
        depth = b.get(f"/v1/market/{region}/cotton/depth", params={"levels": 3}).json()
        assert [lvl[0] for lvl in depth["asks"]] == [7000, 7010, 7020]
        r = b.post("/v1/orders/requirements", json=requirement("bt1", region, price=7015, qty=3))
        assert len(r.json()["allocations"]) == 2
        trades = b.get(f"/v1/market/{region}/cotton/trades").json()["items"]
        assert sorted(x["quantity_kg"] for x in trades) == [1000, 2000] and "buyer_id" not in trades[0]
        s = b.post(
            "/v1/market/search",
            json={
                "commodity": "cotton",
                "quantity": {"value": 1, "unit": "tonne"},
                "max_price_paise_per_kg": 8000,
                "location": {"lat": 21.2, "lon": 72.8, "region": region},
                "limit": 5,
            },
        ).json()
        assert s["status"] == "OK" and len(s["candidates"]) >= 3
        assert "party_id" not in s["candidates"][0]
        assert b.get("/v1/market/IN-ZZZ/cotton/top").status_code == 404
        assert b.get(f"/v1/market/{region}/unobtainium/top").status_code == 404


def test_private_listing_visibility(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["buyer2"]) as b2:
        r = s.post(
            "/v1/orders/availabilities",
            json=availability("priv", region, visibility="PRIVATE", allow_list=["B1"]),
        )
        assert r.status_code == 201
        q = {
            "commodity": "cotton",
            "quantity": {"value": 1, "unit": "tonne"},
            "max_price_paise_per_kg": 8000,
            "location": {"lat": 21.2, "lon": 72.8, "region": region},
        }
        assert len(b.post("/v1/market/search", json=q).json()["candidates"]) == 1
        assert b2.post("/v1/market/search", json=q).json()["candidates"] == []
        assert b2.get(f"/v1/market/{region}/cotton/top").json()["ask"] is None


def test_negotiation_flow(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(keys["buyer2"]) as b2:
        sell = s.post("/v1/orders/availabilities", json=availability("n1", region, qty=10)).json()
        r = b.post("/v1/orders/requirements", json=requirement("nr1", region, qty=3, intent="NEGOTIATE"))
        assert r.status_code == 201, r.text
        buy = r.json()
        assert buy["allocations"] == [] and len(buy["proposals"]) == 1
        pid = buy["proposals"][0]["proposal_id"]
        props = b.get(f"/v1/orders/{buy['order_id']}/proposals").json()["items"]
        assert [p["proposal_id"] for p in props] == [pid]
        assert b2.get(f"/v1/orders/{buy['order_id']}/proposals").status_code == 404
        assert b2.post(f"/v1/proposals/{pid}/accept").status_code == 404
        r = b.post(
            f"/v1/proposals/{pid}/accept",
            json={"quantity": {"value": 2, "unit": "tonne"}, "hold_minutes": 10},
        )
        assert r.status_code == 200, r.text
        res = r.json()["reservation"]
        assert res["quantity_kg"] == 2000
        rid = res["reservation_id"]
        assert b.post(f"/v1/reservations/{rid}/confirm").status_code == 403  # buyer key cannot confirm
        with gw.client(keys["trader"]) as t:
            assert t.post(f"/v1/reservations/{rid}/confirm").status_code == 404  # not its reservation
            assert t.post(f"/v1/reservations/{rid}/release").status_code == 404
        r = s.post(f"/v1/reservations/{rid}/confirm")
        assert r.status_code == 200, r.text
        aid = r.json()["allocation"]["allocation_id"]
        a = b.get(f"/v1/allocations/{aid}").json()
        types = [e["type"] for e in a["audit"]["events"]]
        assert {"PROPOSED", "RESERVED"} <= set(types), types
        # a second proposal: reject, and a reservation released by the seller
        r = b.post(
            "/v1/orders/requirements", json=requirement("nr2", region, qty=1, intent="NEGOTIATE")
        ).json()
        p2 = r["proposals"][0]["proposal_id"]
        assert b.post(f"/v1/proposals/{p2}/reject").status_code == 200
        assert b.post(f"/v1/proposals/{p2}/reject").status_code == 409
        r = b.post(
            "/v1/orders/requirements", json=requirement("nr3", region, qty=1, intent="NEGOTIATE")
        ).json()
        p3 = r["proposals"][0]["proposal_id"]
        rid3 = b.post(f"/v1/proposals/{p3}/accept").json()["reservation"]["reservation_id"]
        assert s.post(f"/v1/reservations/{rid3}/release").status_code == 200
        assert s.get(f"/v1/orders/{sell['order_id']}").json()["allocated_kg"] == 2000


def test_idempotency_keys(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as s:
        h = {"Idempotency-Key": "idem-1"}
        r1 = s.post("/v1/orders/availabilities", json=availability("i1", region), headers=h)
        r2 = s.post("/v1/orders/availabilities", json=availability("i1", region), headers=h)
        assert r1.status_code == r2.status_code == 201
        assert r1.json() == r2.json() and r2.headers.get("idempotent-replayed") == "true"
        r3 = s.post("/v1/orders/availabilities", json=availability("i2", region), headers=h)
        assert r3.status_code == 422 and r3.json()["type"] == PT + "idempotency-key-reused"
        assert (
            len([o for o in s.get("/v1/orders").json()["items"] if o["client_order_id"] in ("i1", "i2")]) == 1
        )
        # keys are per API key: another party's same key is independent
        with gw.client(keys["trader"]) as t:
            r4 = t.post("/v1/orders/availabilities", json=availability("i1", region), headers=h)
            assert r4.status_code == 201 and r4.json()["order_id"] != r1.json()["order_id"]


def test_rate_limit_429(gw: Gateway) -> None:
    from gateway.ratelimit import RoleLimit

    token = gw.party("DS1", ["data_scientist"])
    gw.app.state.limiter.limits["data_scientist"] = RoleLimit(0.5, 3)
    try:
        with gw.client(token) as c:
            codes = [c.get("/v1/market/IN-ZZZ/cotton/top").status_code for _ in range(5)]
            assert codes[:3] == [404, 404, 404] and codes[3] == 429
            r = c.get("/v1/market/IN-ZZZ/cotton/top")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["type"] == PT + "rate-limited"
    finally:
        gw.app.state.limiter.limits["data_scientist"] = RoleLimit(500, 1000)


async def test_overload_503(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    batcher = gw.app.state.gw.batcher
    async with httpx.AsyncClient(
        base_url=gw.base, headers={"Authorization": f"Bearer {keys['seller']}"}, timeout=30
    ) as c:
        assert (
            await c.post("/v1/orders/availabilities", json=availability("ov0", region))
        ).status_code == 201
        old = batcher.queue_max
        batcher.queue_max = 2
        try:
            rs = await asyncio.gather(
                *(
                    c.post("/v1/orders/availabilities", json=availability(f"ov{i}", region))
                    for i in range(1, 40)
                )
            )
        finally:
            batcher.queue_max = old
    codes = [r.status_code for r in rs]
    assert 503 in codes and 201 in codes, codes
    r503 = next(r for r in rs if r.status_code == 503)
    assert r503.json()["type"] == PT + "overloaded" and int(r503.headers["retry-after"]) >= 1


def test_admin_parties_keys_shards(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client(gw.admin) as a:
        assert a.post("/v1/admin/parties", json={"party_id": "S1", "role": "seller"}).status_code == 409
        r = a.patch(
            "/v1/admin/parties/S1", json={"credit_limit_paise": 5_000_000_00, "kyc_status": "VERIFIED"}
        )
        assert r.status_code == 200 and r.json()["credit_limit_paise"] == 500_000_000
        assert a.get("/v1/admin/parties/S1").json()["pan"] == "ABCDE1234F"
        assert a.get("/v1/admin/parties/NOPE").status_code == 404
        assert {p["party_id"] for p in a.get("/v1/admin/parties").json()["items"]} >= {"S1", "B1"}
        assert (
            a.post(
                "/v1/admin/parties", json={"party_id": "L1", "pan": "ABCDE1234F", "role": "buyer"}
            ).status_code
            == 201
        )
        links = a.get("/v1/admin/parties/S1/links").json()["links"]
        assert "L1" in links  # shared PAN
        # keys: issue (shown once), list (never the token), revoke -> 401
        r = a.post("/v1/admin/api-keys", json={"party_id": "L1", "roles": ["buyer"]})
        assert r.status_code == 201
        kid, tok = r.json()["key_id"], r.json()["token"]
        listed = a.get("/v1/admin/api-keys", params={"party_id": "L1"}).json()["items"]
        assert [k["key_id"] for k in listed] == [kid] and "token" not in listed[0] and tok not in str(listed)
        assert a.post("/v1/admin/api-keys", json={"roles": ["buyer"]}).status_code == 422
        assert a.post(f"/v1/admin/api-keys/{kid}/revoke").status_code == 200
        gw.app.state.auth.forget()
        with gw.client(tok) as c:
            assert c.get("/v1/orders").status_code == 401
        assert a.post("/v1/admin/api-keys/nope/revoke").status_code == 404
        # shards
        region = unique_region()
        r = a.post("/v1/admin/shards", json={"region": region, "commodity": "cotton"})
        assert r.status_code == 201, r.text
        items = a.get("/v1/admin/shards").json()["items"]
        mine = next(x for x in items if x["shard_id"] == f"{region}.cotton")
        assert "node_id" in mine and "book_size" in mine and "gateway_queue_depth" in mine
        r = a.post(f"/v1/admin/shards/{region}.cotton/drain")
        assert r.status_code == 200 and r.json()["draining"] is True
        assert a.post("/v1/admin/shards/IN-NOPE.cotton/drain").status_code == 404
        assert a.get("/v1/admin/risk/health").status_code == 200
    with gw.client(keys["seller"]) as s:
        r = s.post("/v1/orders/availabilities", json=availability("dr1", region))
        assert r.status_code == 503 and "draining" in r.json()["detail"]
        assert s.post("/v1/admin/parties", json={"party_id": "X9"}).status_code == 403


def test_operator_cli_and_admin_key_file(gw: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import stat

    from gateway.operator_cli import main

    assert stat.S_IMODE(os.stat(gw.key_file).st_mode) == 0o600
    region = unique_region()
    common = ["--gateway", gw.base, "--api-key-file", str(gw.key_file)]
    assert main([*common, "add", region, "cotton"]) == 0
    assert main([*common, "list"]) == 0
    out = capsys.readouterr().out
    assert f"{region}.cotton" in out and gw.admin not in out
    assert main([*common, "--json", "drain", f"{region}.cotton"]) == 0
    assert '"draining": true' in capsys.readouterr().out
    assert main([*common, "drain", "IN-NOPE.cotton"]) == 1
    assert main(["--gateway", gw.base, "--api-key-file", "/nonexistent/key", "list"]) == 2


def test_metrics_export_shard_recovery_time(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as c:
        r = c.post("/v1/orders/availabilities", json=availability("rm1", region))
        assert r.status_code in (200, 201), r.text
        lines = [
            ln
            for ln in c.get("/metrics").text.splitlines()
            if ln.startswith(f'tradedesk_shard_recovery_seconds{{shard="{region}.cotton"')
        ]
    assert len(lines) == 1 and 'start="cold"' in lines[0]
    assert 0 < float(lines[0].rsplit(" ", 1)[1]) < 60
