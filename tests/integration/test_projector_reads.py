"""Read-your-writes over the asynchronous projections, through the real gateway: a list read right
after a write sees it; with the projector stopped the list answers 503 problem+json with
Retry-After after the bounded wait while GET /v1/orders/{id} is answered by the shard; the lag is on
the shard list and /metrics."""

from __future__ import annotations

import time

import pytest
import ray

from gateway.consistency import WAIT_S
from tests.integration.conftest import unique_region, wait_projected
from tests.integration.gateway_server import Gateway, availability

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"


def test_read_your_writes_and_the_bounded_wait(gw: Gateway, pg_dsn: str) -> None:
    seller = gw.party("RS1", ["seller"], kyc_status="VERIFIED", pan="ABCDE1234F")
    region = unique_region()
    proj = gw.runtime.projector
    with gw.client(seller) as c:
        for i in range(5):  # each list read right after its write holds it
            r = c.post("/v1/orders/availabilities", json=availability(f"ryw{i}", region))
            assert r.status_code == 201, r.text
            oid = r.json()["order_id"]
            items = c.get("/v1/orders", params={"region": region}).json()["items"]
            assert oid in {o["order_id"] for o in items}
        sid = r.json()["shard_id"]

        ray.get(proj.pause.remote())
        try:
            r = c.post("/v1/orders/availabilities", json=availability("ryw-stopped", region))
            assert r.status_code == 201, r.text
            oid = r.json()["order_id"]
            got = c.get(f"/v1/orders/{oid}")  # the shard itself answers
            assert got.status_code == 200 and got.json()["open_kg"] == 10_000
            t0 = time.monotonic()
            r = c.get("/v1/orders", params={"region": region})
            waited = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["Retry-After"] == "1"
            assert r.json()["type"] == PT + "projection-behind" and sid in r.json()["detail"]
            assert WAIT_S <= waited < WAIT_S + 3
            with gw.client(gw.admin) as admin:
                rows = {s["shard_id"]: s for s in admin.get("/v1/admin/shards").json()["items"]}
                assert rows[sid]["projector_lag_events"] == 1
                assert rows[sid]["projector_lag_s"] > 0
                metrics = admin.get("/metrics").text
                assert f'tradedesk_projector_lag_events{{shard="{sid}"}} 1.0' in metrics
        finally:
            ray.get(proj.resume.remote())
        items = c.get("/v1/orders", params={"region": region}).json()["items"]
        assert oid in {o["order_id"] for o in items}
    wait_projected(pg_dsn, sid)
    with gw.client(gw.admin) as admin:
        rows = {s["shard_id"]: s for s in admin.get("/v1/admin/shards").json()["items"]}
        assert (rows[sid]["projector_lag_events"], rows[sid]["projector_lag_s"]) == (0, 0)
        assert rows[sid]["projector_seq"] == rows[sid]["committed_seq"]
