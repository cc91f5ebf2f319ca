"""Shard policy over the real gateway, Ray actors and PostgreSQL (docs/operators.md):

- the default creation policy ``traded``: an order opens a shard only where its commodity is traded
  (409 ``no-market`` elsewhere, nothing created); an admin adds any other market; an operator cannot;
- a cap on running shards per node (503 ``shard-capacity``);
- idle shards stop (their actor is gone) and the next order starts them from PostgreSQL;
- drain -> resume (endpoint and CLI) with the roles that may do each (403 for the others);
- after a restart every shard of the table is listed with its status, and ``/readyz`` waits for the
  ACTIVE shards to recover.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray

from actors.core.ids import shard_actor_name
from tests.conftest import REDIS_URL, create_database, drop_database
from tests.integration.conftest import db_rows, unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration

PT = "urn:tradedesk:problem:"
DEFAULT_POLICY = {"shard_creation": "traded", "shard_idle_timeout_s": 2.0, "shard_idle_check_s": 0.5}
KOCHI = {"lat": 9.93, "lon": 76.27, "city": "Kochi", "region": "IN-KL"}
NAGPUR = {"lat": 21.15, "lon": 79.09, "city": "Nagpur", "region": "IN-MH"}
JAIPUR = {"lat": 26.91, "lon": 75.79, "city": "Jaipur", "region": "IN-RJ"}


@pytest.fixture(scope="module")
def gw(ray_session: None, pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(pg_dsn, REDIS_URL, tmp_path_factory.mktemp("keys"), runtime=DEFAULT_POLICY)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def keys(gw: Gateway) -> dict[str, str]:
    with gw.client(gw.admin) as a:
        r = a.post("/v1/admin/api-keys", json={"roles": ["operator"], "label": "ops desk"})
        assert r.status_code == 201, r.text
        operator = r.json()["token"]
    return {
        "seller": gw.party("SP1", ["seller"], kyc_status="VERIFIED"),
        "buyer": gw.party("BP1", ["buyer"], kyc_status="VERIFIED"),
        "operator": operator,
    }


def soybean(coid: str, location: dict[str, Any]) -> dict[str, Any]:
    return {
        "client_order_id": coid,
        "commodity": "soybean",
        "quantity": {"value": 5, "unit": "tonne"},
        "price_paise_per_kg": 4500,
        "location": location,
        "quality": {"moisture_pct": 10.0, "oil_pct": 18.0},
    }


def shards(c: httpx.Client) -> dict[str, dict[str, Any]]:
    r = c.get("/v1/admin/shards")
    assert r.status_code == 200, r.text
    return {x["shard_id"]: x for x in r.json()["items"]}


def wait_status(c: httpx.Client, sid: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        row = shards(c).get(sid, {})
        if row.get("status") == status:
            return row
        assert time.monotonic() < deadline, (sid, row)
        time.sleep(0.25)


def actor_exists(namespace: str, sid: str) -> bool:
    try:
        ray.get_actor(shard_actor_name(sid), namespace=namespace)
    except ValueError:
        return False
    return True


def test_orders_open_shards_only_where_the_commodity_is_traded(gw: Gateway, keys: dict[str, str]) -> None:
    with gw.client(keys["seller"]) as s, gw.client(gw.admin) as a, gw.client(keys["operator"]) as op:
        r = s.post("/v1/orders/availabilities", json=soybean("kl1", KOCHI))
        assert r.status_code == 409, r.text
        body = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert body["type"] == PT + "no-market"
        assert body["detail"] == (
            "no market for soybean in IN-KL; an admin can add it (POST /v1/admin/shards)"
        )
        # a real region outside India has no market either
        abroad = unique_region()
        r = s.post("/v1/orders/availabilities", json=availability("fr1", abroad))
        assert r.status_code == 409 and r.json()["type"] == PT + "no-market", r.text
        listed = shards(a)
        assert "IN-KL.soybean" not in listed and f"{abroad}.cotton" not in listed
        # soybean is traded in Maharashtra (data/agmarknet): an order opens the market
        r = s.post("/v1/orders/availabilities", json=soybean("mh1", NAGPUR))
        assert r.status_code == 201 and r.json()["shard_id"] == "IN-MH.soybean", r.text
        # an operator may not add markets; an admin may, whatever the policy
        r = op.post("/v1/admin/shards", json={"region": "IN-KL", "commodity": "soybean"})
        assert r.status_code == 403 and r.json()["type"] == PT + "forbidden"
        assert "IN-KL.soybean" not in shards(a)
        r = a.post("/v1/admin/shards", json={"region": "IN-KL", "commodity": "soybean"})
        assert r.status_code == 201 and r.json()["status"] == "UP", r.text
        r = s.post("/v1/orders/availabilities", json=soybean("kl1", KOCHI))
        assert r.status_code == 201 and r.json()["shard_id"] == "IN-KL.soybean", r.text


def test_idle_shard_stops_and_the_next_order_sees_its_book(gw: Gateway, keys: dict[str, str]) -> None:
    gj = {"lat": 21.17, "lon": 72.83, "city": "Surat", "region": "IN-GJ"}
    with gw.client(keys["seller"]) as s, gw.client(keys["buyer"]) as b, gw.client(gw.admin) as a:
        sell = s.post("/v1/orders/availabilities", json={**availability("id1", "IN-GJ"), "location": gj})
        assert sell.status_code == 201, sell.text
        sid = "IN-GJ.cotton"
        assert actor_exists(gw.namespace, sid)
        row = wait_status(a, sid, "IDLE")  # 2 s without commands
        assert row["running"] is False
        deadline = time.monotonic() + 10
        while actor_exists(gw.namespace, sid):  # the name is released just after the kill
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # the next order starts the shard from PostgreSQL and matches the resting availability
        r = b.post("/v1/orders/requirements", json={**requirement("id2", "IN-GJ"), "location": gj})
        assert r.status_code == 201, r.text
        (alloc,) = r.json()["allocations"]
        assert alloc["quantity_kg"] == 4000 and alloc["sell_order_id"] == sell.json()["order_id"]
        assert shards(a)[sid]["status"] == "UP"
        # queries recover an idle shard too
        wait_status(a, sid, "IDLE")
        r = b.get("/v1/market/IN-GJ/cotton/depth")
        assert r.status_code == 200, r.text
        assert r.json()["asks"] == [[7000, 6000, 1]]  # [price, open kg, orders]


def test_drain_resume_roles_and_cli(
    gw: Gateway, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.operator_cli import main

    rj = {**availability("dr1", "IN-RJ"), "location": JAIPUR}
    sid = "IN-RJ.cotton"
    with gw.client(keys["seller"]) as s, gw.client(keys["operator"]) as op, gw.client(gw.admin) as a:
        assert s.post("/v1/orders/availabilities", json=rj).status_code == 201
        for path in (f"/v1/admin/shards/{sid}/drain", f"/v1/admin/shards/{sid}/resume"):
            r = s.post(path)
            assert r.status_code == 403 and r.json()["type"] == PT + "forbidden"
        assert s.get("/v1/admin/shards").status_code == 403
        r = op.post(f"/v1/admin/shards/{sid}/drain")
        assert r.status_code == 200 and r.json()["status"] == "DRAINED" and r.json()["draining"] is True
        r = s.post("/v1/orders/availabilities", json={**rj, "client_order_id": "dr2"})
        assert r.status_code == 503 and "draining" in r.json()["detail"]
        # re-adding does not silently reopen a drained market: resume does
        r = a.post("/v1/admin/shards", json={"region": "IN-RJ", "commodity": "cotton"})
        assert r.status_code == 409 and "resume" in r.json()["detail"]
        # the drained shard stops when idle and stays DRAINED
        row = wait_status(op, sid, "DRAINED")
        deadline = time.monotonic() + 15
        while row["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.25)
            row = shards(op)[sid]
        r = s.post("/v1/orders/availabilities", json={**rj, "client_order_id": "dr3"})
        assert r.status_code == 503 and "draining" in r.json()["detail"]
        r = op.post(f"/v1/admin/shards/{sid}/resume")
        assert r.status_code == 200 and r.json()["status"] == "UP" and r.json()["draining"] is False
        r = s.post("/v1/orders/availabilities", json={**rj, "client_order_id": "dr4"})
        assert r.status_code == 201, r.text
        assert op.post("/v1/admin/shards/IN-RJ.wheat/resume").status_code == 404
    # the same with the CLI (admin key file)
    common = ["--gateway", gw.base, "--api-key-file", str(gw.key_file)]
    assert main([*common, "--json", "drain", sid]) == 0
    assert '"status": "DRAINED"' in capsys.readouterr().out
    assert main([*common, "resume", sid]) == 0
    out = capsys.readouterr().out
    assert sid in out and "UP" in out
    assert main([*common, "list"]) == 0
    out = capsys.readouterr().out
    assert sid in out and "IN-KL.soybean" in out
    assert main([*common, "resume", "IN-KL.wheat"]) == 1
    assert "error 404" in capsys.readouterr().err
    assert main([*common, "resume"]) == 2  # usage error


def test_capacity_cap_per_node(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    name, dsn = create_database()
    g = Gateway(
        dsn,
        REDIS_URL,
        tmp_path_factory.mktemp("cap"),
        runtime={"max_shards_per_node": 2, "shard_idle_timeout_s": 0},
    )
    try:
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        assert nodes == 1  # the test session's local Ray: the cap is 2 running shards
        seller = g.party("SC1", ["seller"], kyc_status="VERIFIED")
        with g.client(seller) as s, g.client(g.admin) as a:
            r = s.post("/v1/orders/availabilities", json={**availability("c1", "IN-GJ")})
            assert r.status_code == 201, r.text
            r = s.post("/v1/orders/availabilities", json={**availability("c2", "IN-MH"), "location": NAGPUR})
            assert r.status_code == 201, r.text
            r = s.post("/v1/orders/availabilities", json={**availability("c3", "IN-RJ"), "location": JAIPUR})
            assert r.status_code == 503, r.text
            assert r.json()["type"] == PT + "shard-capacity" and r.headers["retry-after"] == "5"
            assert "shard capacity reached" in r.json()["detail"]
            r = a.post("/v1/admin/shards", json={"region": "IN-RJ", "commodity": "cotton"})
            assert r.status_code == 503 and r.json()["type"] == PT + "shard-capacity"
            assert set(shards(a)) == {"IN-GJ.cotton", "IN-MH.cotton"}
            # known shards still take orders at the cap
            r = s.post("/v1/orders/availabilities", json={**availability("c4", "IN-GJ")})
            assert r.status_code == 201, r.text
    finally:
        g.stop()
        drop_database(name)


def test_restart_lists_every_shard_and_readyz_waits_for_recovery(
    gw: Gateway, keys: dict[str, str], pg_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with gw.client(gw.admin) as a, gw.client(keys["seller"]) as s:
        assert a.post("/v1/admin/shards/IN-KL.soybean/drain").status_code == 200
        wait_status(a, "IN-GJ.cotton", "IDLE")
        r = s.post("/v1/orders/availabilities", json={**soybean("rs0", NAGPUR)})
        assert r.status_code == 201, r.text
        listed = shards(a)
    gw.stop()  # every actor of the runtime ends; the shards table stays
    table = {r["shard_id"]: r["status"] for r in db_rows(pg_dsn, "SELECT shard_id, status FROM shards")}
    assert table["IN-KL.soybean"] == "DRAINED" and table["IN-GJ.cotton"] == "IDLE"
    assert table["IN-MH.soybean"] == "ACTIVE"  # an order just before the stop
    assert set(table) == set(listed)
    g2 = Gateway(
        pg_dsn,
        REDIS_URL,
        tmp_path_factory.mktemp("again"),
        runtime={**DEFAULT_POLICY, "shard_idle_timeout_s": 0},
    )
    try:
        deadline = time.monotonic() + 60
        with g2.client() as c:
            while (r := c.get("/readyz")).status_code != 200:
                assert r.status_code == 503 and r.json()["checks"].get("shards") in (None, "recovering")
                assert time.monotonic() < deadline, r.text
                time.sleep(0.1)
            ready = r.json()
        # ready = every ACTIVE shard has recovered; IDLE and DRAINED ones are not waited for
        active = {sid for sid, st in table.items() if st == "ACTIVE"}
        assert ready["checks"]["shards"] == "ok"
        assert ready["shards"] == dict.fromkeys(sorted(active), "ready")
        with g2.client(g2.admin) as a:
            after = shards(a)
        assert set(after) == set(table)
        for sid, st in table.items():
            assert after[sid]["status"] == {"ACTIVE": "UP"}.get(st, st), (sid, after[sid])
            assert after[sid]["running"] is (st == "ACTIVE")
        seller = g2.party("SP1", ["seller"], kyc_status="VERIFIED")
        with g2.client(seller) as s:
            t0 = time.perf_counter()
            r = s.post("/v1/orders/availabilities", json={**soybean("rs1", NAGPUR)})
            assert r.status_code == 201, r.text
            assert time.perf_counter() - t0 < 5.0  # the shard had recovered before ready (~1.5 s to start)
            # the shard recovered its book: the two earlier availabilities rest beside the new one
            depth = s.get("/v1/market/IN-MH/soybean/depth")
            assert depth.status_code == 200 and depth.json()["asks"] == [[4500, 15_000, 3]], depth.text
    finally:
        g2.stop()


class SlowDeciderFactory:
    """A risk decider factory that takes ``delay_s`` seconds: the shard's start (and so its
    recovery) is that much slower, long enough to watch readiness."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self) -> Any:
        from actors.core.risk.types import PassAllDecider

        time.sleep(self.delay_s)
        return PassAllDecider()


def test_readiness_waits_for_active_shards_to_recover(ray_session: None) -> None:
    from actors.runtime import start_runtime
    from actors.settings import Settings
    from bench.shard import make_orders
    from tests.integration.conftest import kill_namespace, start_test_runtime

    name, dsn = create_database()
    try:
        rt = start_test_runtime(dsn)
        region = unique_region()
        sid = f"{region}.cotton"
        h = rt.shard(region, "cotton")
        cmds = make_orders(region, "cotton", 20, seed=3, prefix="rd")
        assert len(ray.get(h.submit.remote(cmds))) == 20
        assert ray.get(rt.directory.readiness.remote()) == {"ready": True, "shards": {sid: "ready"}}
        # shutdown (tradedesk serve): flush and snapshot, the status stays ACTIVE for the next start
        (flushed,) = rt.flush_all()
        assert flushed["shard_id"] == sid and flushed["last_snapshot_seq"] == flushed["committed_seq"] > 0
        assert db_rows(dsn, "SELECT status FROM shards WHERE shard_id = %s", sid) == [{"status": "ACTIVE"}]
        kill_namespace(rt.namespace)
        s = Settings(ray_namespace=f"tdt-{name[-10:]}", shard_creation="any", shard_idle_timeout_s=0)
        rt2 = start_runtime(s, dsn, decider=SlowDeciderFactory(10.0))
        try:
            got = ray.get(rt2.directory.readiness.remote())
            assert got == {"ready": False, "shards": {sid: "recovering"}}
            assert {r["shard_id"]: r["status"] for r in rt2.list_shards()} == {sid: "RECOVERING"}
            deadline = time.monotonic() + 60
            while not (got := ray.get(rt2.directory.readiness.remote()))["ready"]:
                assert time.monotonic() < deadline, got
            assert got == {"ready": True, "shards": {sid: "ready"}}
            info = ray.get(rt2.shard(region, "cotton").info.remote(), timeout=1)
            assert info["seq"] == info["committed_seq"] > 0 and info["recoveries"] == 1
        finally:
            kill_namespace(rt2.namespace)
    finally:
        drop_database(name)
