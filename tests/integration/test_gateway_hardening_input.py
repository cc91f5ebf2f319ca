"""Input hardening at the edge (issue 10, defects 1-edge, 6, 7, 8) against the real gateway (uvicorn on
127.0.0.1) over real Ray actors, PostgreSQL and Redis: a NUL byte anywhere, numbers sent as
booleans or strings, units a commodity is not traded in, absurd quality ranges, points outside their
region, and a chunked body over the size limit. Each answer is a 4xx problem+json and nothing
changes."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.app import MAX_BODY_BYTES
from tests.integration.conftest import db_rows, unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    return {
        "seller": gw.party("HS1", ["seller"], kyc_status="VERIFIED"),
        "seller2": gw.party("HS2", ["seller"], kyc_status="VERIFIED"),
        "trader": gw.party("HT1", ["trader"], kyc_status="VERIFIED"),
    }


def _validation_problem(r: httpx.Response, *loc: Any) -> dict[str, Any]:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"] == PT + "validation-error", body
    if loc:
        assert list(loc) in [e["loc"][: len(loc)] for e in body["errors"]], body["errors"]
    return body


def _counts(dsn: str) -> dict[str, int]:
    """Rows of the tables a request writes synchronously (events are committed before the answer)."""
    tables = ("events", "parties", "api_keys")
    return {t: db_rows(dsn, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in tables}


def _my_orders(c: httpx.Client, want: int) -> set[str]:
    """Client order ids of my orders once the (asynchronous) projection shows ``want`` of them."""
    deadline = time.monotonic() + 10
    while True:
        ids = {o["client_order_id"] for o in c.get("/v1/orders", params={"limit": 500}).json()["items"]}
        if len(ids) >= want or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def test_nul_in_a_body_field_is_422_and_fails_no_neighbour(
    gw: Gateway, keys: dict[str, str], pg_dsn: str
) -> None:
    region = unique_region()
    with gw.client(keys["seller"]) as s, gw.client(keys["seller2"]) as s2:
        assert s.post("/v1/orders/availabilities", json=availability("warm", region)).status_code == 201
        before = _counts(pg_dsn)
        bad = availability("nul1", region)
        bad["location"]["city"] = "x\u0000"
        _validation_problem(s.post("/v1/orders/availabilities", json=bad), "body", "location", "city")
        batch = {"orders": [{"side": "SELL", **availability(f"nb{i}", region)} for i in range(3)]}
        batch["orders"][1]["location"]["district"] = "Sura\u0000t"
        _validation_problem(s.post("/v1/orders/batch", json=batch), "body", "orders", 1)
        assert _counts(pg_dsn) == before  # the whole request is refused: nothing stored

        # bad orders interleaved with another party's good ones on the same shard: only the bad fail
        def good(i: int) -> int:
            return s2.post("/v1/orders/availabilities", json=availability(f"ok{i}", region)).status_code

        def nul(i: int) -> int:
            doc = availability(f"bad{i}", region)
            doc["location"]["city"] = f"c{i}\u0000"
            return s.post("/v1/orders/availabilities", json=doc).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            goods = [pool.submit(good, i) for i in range(20)]
            bads = [pool.submit(nul, i) for i in range(20)]
            assert [f.result() for f in goods] == [201] * 20
            assert [f.result() for f in bads] == [422] * 20
        assert _my_orders(s2, 20) == {f"ok{i}" for i in range(20)}
        assert _my_orders(s, 1) == {"warm"}
        assert _counts(pg_dsn)["events"] == before["events"] + 20


def _cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_nul_in_path_and_query_parameters_is_422(gw: Gateway, keys: dict[str, str], pg_dsn: str) -> None:
    trading = [
        ("GET", "/v1/orders?region=%00"),
        ("GET", "/v1/orders?commodity=%00"),
        ("GET", "/v1/orders?cursor=%00"),
        ("GET", "/v1/allocations?shard_id=%00"),
        ("GET", "/v1/allocations?cursor=ab%00"),
        ("GET", "/v1/orders/O-IN-GJ.cotton-1%00"),
        ("GET", "/v1/orders/O-IN-GJ.cotton-1%00/proposals"),
        ("GET", "/v1/allocations/A-%00-1"),
        ("POST", "/v1/orders/O-%00.cotton-1/cancel"),
        ("POST", "/v1/proposals/P-%00.cotton-1/reject"),
        ("POST", "/v1/reservations/R-%00.cotton-1/confirm"),
        ("POST", "/v1/reservations/R-%00.cotton-1/release"),
        ("GET", "/v1/market/IN-GJ/cotton%00/top"),
    ]
    admin = [
        ("GET", "/v1/admin/api-keys?party_id=%00"),
        ("GET", "/v1/admin/parties/HS1%00"),
        ("GET", "/v1/admin/parties/HS1%00/links"),
        ("POST", "/v1/admin/api-keys/k%00/revoke"),
        ("POST", "/v1/admin/shards/IN-GJ.cotton%00/drain"),
    ]
    before = _counts(pg_dsn)
    with gw.client(keys["trader"]) as t, gw.client(gw.admin) as a:
        for client, calls in ((t, trading), (a, admin)):
            for method, url in calls:
                _validation_problem(client.request(method, url))
        _validation_problem(t.post("/v1/orders/O-%00.cotton-1/amend", json={"price_paise_per_kg": 7000}))
        _validation_problem(t.post("/v1/proposals/P-%00.cotton-1/accept", json={}))
        _validation_problem(a.patch("/v1/admin/parties/HS1%00", json={"name": "n"}))
        # admin names and labels
        body = _validation_problem(a.post("/v1/admin/parties", json={"party_id": "HX", "name": "A\u0000B"}))
        assert body["errors"][0]["type"] == "text_control_character"
        _validation_problem(a.patch("/v1/admin/parties/HS1", json={"name": "\u0000"}), "body", "name")
        _validation_problem(
            a.post("/v1/admin/api-keys", json={"party_id": "HS1", "roles": ["seller"], "label": "l\u0000"}),
            "body",
            "label",
        )
        # a cursor that decodes to a NUL, a bool or an out-of-range number is an invalid cursor (400)
        for vals in ([0, "O-\u0000-1"], [True, "x"], [2**70, "x"], ["a", "b"]):
            r = t.get("/v1/orders", params={"cursor": _cursor(vals)})
            assert r.status_code == 400 and r.json()["type"] == PT + "malformed-request", (vals, r.text)
            r = t.get("/v1/allocations", params={"cursor": _cursor(vals)})
            assert r.status_code == 400, (vals, r.text)
        # NFC: a decomposed name is stored composed
        r = a.post("/v1/admin/parties", json={"party_id": "HNFC", "name": "Re\u0301union Cotton"})
        assert r.status_code == 201 and r.json()["name"] == "R\u00e9union Cotton"
    after = _counts(pg_dsn)
    assert after == {**before, "parties": before["parties"] + 1}


def test_numbers_must_be_json_numbers(gw: Gateway, keys: dict[str, str]) -> None:
    region = unique_region()
    sell_fields = [("quantity", "value"), ("price_paise_per_kg",), ("location", "lat"), ("location", "lon")]
    buy_fields = [("max_price_paise_per_kg",), ("max_distance_km",), ("quantity", "value")]
    with gw.client(keys["trader"]) as t:
        for good, url, fields in (
            (availability("s", region), "/v1/orders/availabilities", sell_fields),
            (requirement("b", region, max_distance_km=300), "/v1/orders/requirements", buy_fields),
        ):
            for path in fields:
                for bad in (True, "100"):
                    doc = json.loads(json.dumps(good))
                    node = doc
                    for k in path[:-1]:
                        node = node[k]
                    node[path[-1]] = bad
                    _validation_problem(t.post(url, json=doc), "body", *path)
        assert t.get("/v1/orders").json()["items"] == []  # nothing was placed
        # an integer is a valid float: lat/lon/distance as JSON integers are fine
        doc = requirement("ints", region, max_distance_km=300)
        doc["location"].update(lat=21, lon=72)
        assert t.post("/v1/orders/requirements", json=doc).status_code == 201


def test_units_quality_ranges_and_region_boxes(gw: Gateway, keys: dict[str, str], pg_dsn: str) -> None:
    before = _counts(pg_dsn)
    with gw.client(keys["trader"]) as t:
        soy = availability("soy", "IN-MP", qty=10, unit="bale")
        soy.update(commodity="soybean", quality={"oil_pct": 18.5})
        soy["location"].update(lat=22.7, lon=75.9, city="Indore")
        body = _validation_problem(t.post("/v1/orders/availabilities", json=soy), "body", "quantity")
        assert "soybean is traded in kg, quintal, tonne, not bale" in body["errors"][0]["msg"]
        wide = requirement("wide", "IN-GJ")
        wide["quality_ranges"] = {"micronaire": {"min": -1e308, "max": 1e308}}
        body = _validation_problem(t.post("/v1/orders/requirements", json=wide), "body", "quality_ranges")
        assert "must lie within [2, 7] ug/inch" in body["errors"][0]["msg"]
        south = availability("south", "IN-GJ")
        south["location"]["lat"] = -5.0
        body = _validation_problem(t.post("/v1/orders/availabilities", json=south), "body", "location")
        assert "lies outside IN-GJ (Gujarat)" in body["errors"][0]["msg"]
        search = {
            "commodity": "cotton",
            "quantity": {"value": 1, "unit": "tonne"},
            "max_price_paise_per_kg": 8000,
            "location": {"lat": -5.0, "lon": 72.8, "region": "IN-GJ"},
        }
        _validation_problem(t.post("/v1/market/search", json=search), "body", "location")
    assert _counts(pg_dsn) == before


def test_chunked_body_over_the_limit_is_413_while_streaming(gw: Gateway, keys: dict[str, str]) -> None:
    chunk = b" " * 65536
    total = 20 * 1024 * 1024
    sent = {"bytes": 0}

    def body() -> Iterator[bytes]:
        yield b'{"orders": ['
        while sent["bytes"] < total:
            sent["bytes"] += len(chunk)
            yield chunk
        yield b"]}"

    with gw.client(keys["trader"]) as t:
        r = t.post("/v1/orders/batch", content=body(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["type"] == PT + "payload-too-large"
    assert sent["bytes"] < total  # the server stopped reading: the client never sent the whole body
    # the same through an Idempotency-Key (that middleware buffers the body itself)
    sent["bytes"] = 0
    with gw.client(keys["trader"]) as t:
        r = t.post(
            "/v1/orders/batch",
            content=body(),
            headers={"content-type": "application/json", "Idempotency-Key": "big-1"},
        )
        assert r.status_code == 413, r.text
    with gw.client(keys["trader"]) as t:  # and the key was not spent on the refused request
        r = t.post("/v1/orders/batch", json={"orders": []}, headers={"Idempotency-Key": "big-1"})
        assert r.status_code == 422 and r.headers.get("idempotent-replayed") is None
        # a body just under the limit still gets through to validation
        small = b'{"orders": [' + b" " * (MAX_BODY_BYTES - 64) + b"]}"
        r = t.post("/v1/orders/batch", content=small, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["type"] == PT + "validation-error"
