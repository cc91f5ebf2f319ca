"""The shared hosting mode (actors/shard_hosting.py) over real Ray actors and PostgreSQL:

- shards of one group share one host process, a shard ruled ``process`` keeps its own; each hosted
  shard keeps its own gap-free log, and its book equals a full-log replay;
- the host process killed mid-stream (Ray restarts it empty): the directory opens its shards again
  from PostgreSQL; every acknowledged order is in the log exactly once and retries return the
  original results;
- a cold move and an idle-style stop of one hosted shard leave its neighbours serving in the same
  process;
- a restarted directory adopts the hosted shards where they are; one started with another hosting
  setting closes them in their host and starts each in its own process, with the same book.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import ray

from actors.shard_hosting import HostedShard
from bench.shard import make_orders
from tests.conftest import REDIS_URL
from tests.integration.conftest import (
    assert_gap_free,
    db_events,
    kill_namespace,
    replay,
    start_test_runtime,
    stream_orders,
    unique_region,
)

pytestmark = pytest.mark.integration

REGIONS = [unique_region() for _ in range(3)]  # two share the cotton host, the third has its own


@pytest.fixture(scope="module")
def rt(ray_session: None, pg_dsn: str) -> Iterator[Any]:
    hosting = {"*": "commodity", REGIONS[2]: "process"}
    runtime = start_test_runtime(pg_dsn, redis_url=REDIS_URL, shard_hosting=hosting)
    yield runtime
    kill_namespace(runtime.namespace)


def _assert_log_matches(dsn: str, region: str, h: Any, acked: dict[str, dict[str, Any]]) -> None:
    sid = f"{region}.cotton"
    events = db_events(dsn, sid)
    assert_gap_free(events)
    accepted = {
        e.payload.order.client_order_id: e.payload.order.order_id
        for e in events
        if e.type == "ORDER_ACCEPTED"
    }
    assert len(accepted) == sum(1 for e in events if e.type == "ORDER_ACCEPTED")  # none twice
    for coid, r in acked.items():
        assert r["status"] == "ACCEPTED" and accepted[coid] == r["order_id"]
    snap = ray.get(h.engine_snapshot.remote(), timeout=60)
    assert snap["seq"] == events[-1].seq
    assert replay(region, "cotton", events).snapshot() == snap


def test_group_shares_one_process_and_keeps_logs_apart(rt: Any, pg_dsn: str) -> None:
    handles = {r: rt.shard(r, "cotton") for r in REGIONS}
    assert isinstance(handles[REGIONS[0]], HostedShard) and isinstance(handles[REGIONS[1]], HostedShard)
    assert not isinstance(handles[REGIONS[2]], HostedShard)
    infos = {r: ray.get(h.info.remote(), timeout=60) for r, h in handles.items()}
    assert infos[REGIONS[0]]["pid"] == infos[REGIONS[1]]["pid"] != infos[REGIONS[2]]["pid"]
    assert infos[REGIONS[0]]["host"] == infos[REGIONS[1]]["host"] == "commodity:cotton"
    assert "host" not in infos[REGIONS[2]] and infos[REGIONS[2]]["hosting"] == "process"

    acked: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in REGIONS}
    errors: list[str] = []
    cmds = {r: make_orders(r, "cotton", 200, seed=i, prefix=f"g{i}-") for i, r in enumerate(REGIONS)}
    threads = [
        threading.Thread(target=stream_orders, args=(handles[r], cmds[r], acked[r], errors)) for r in REGIONS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == []
    for r in REGIONS:
        assert set(acked[r]) == {c.client_order_id for c in cmds[r]}
        _assert_log_matches(pg_dsn, r, handles[r], acked[r])
    rows = {x["shard_id"]: x for x in rt.list_shards()}
    assert all(rows[f"{r}.cotton"]["status"] == "UP" for r in REGIONS)
    assert rows[f"{REGIONS[0]}.cotton"]["hosting"] == "shared"


def test_host_killed_mid_stream_reopens_its_shards(rt: Any, pg_dsn: str) -> None:
    regions = REGIONS[:2]
    handles = {r: rt.shard(r, "cotton") for r in regions}
    pid = ray.get(handles[regions[0]].info.remote(), timeout=60)["pid"]
    acked: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in regions}
    errors: list[str] = []
    cmds = {r: make_orders(r, "cotton", 300, seed=7 + i, prefix=f"k{i}-") for i, r in enumerate(regions)}
    threads = [
        threading.Thread(target=stream_orders, args=(handles[r], cmds[r], acked[r], errors)) for r in regions
    ]
    for t in threads:
        t.start()
    while min(len(a) for a in acked.values()) < 60:
        time.sleep(0.01)
    ray.kill(handles[regions[0]].host, no_restart=False)  # the whole host process: both shards
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert errors, "the kill should have failed at least one call"
    for r in regions:
        info = ray.get(handles[r].info.remote(), timeout=60)
        assert info["pid"] != pid and info["start_kind"] == "restart"
        assert set(acked[r]) == {c.client_order_id for c in cmds[r]}
        _assert_log_matches(pg_dsn, r, handles[r], acked[r])
        last = db_events(pg_dsn, f"{r}.cotton")[-1].seq
        again = ray.get(handles[r].submit.remote(cmds[r][:50]), timeout=60)  # retries: nothing new
        assert [x["order_id"] for x in again] == [
            acked[r][c.client_order_id]["order_id"] for c in cmds[r][:50]
        ]
        assert all(x["duplicate"] for x in again)
        assert db_events(pg_dsn, f"{r}.cotton")[-1].seq == last


def test_stopping_one_hosted_shard_leaves_its_neighbour_serving(rt: Any, pg_dsn: str) -> None:
    a, b = REGIONS[0], REGIONS[1]
    ha, hb = rt.shard(a, "cotton"), rt.shard(b, "cotton")
    ia, ib = ray.get(ha.info.remote(), timeout=60), ray.get(hb.info.remote(), timeout=60)
    snap_a = ray.get(ha.engine_snapshot.remote(), timeout=60)

    moved = ray.get(rt.directory.move.remote(f"{a}.cotton"), timeout=120)  # cold: drain, close, open
    assert moved["committed_seq"] == ia["committed_seq"] and moved["pid"] == ia["pid"]
    assert ray.get(rt.shard(a, "cotton").engine_snapshot.remote(), timeout=60) == snap_a
    hosted = ray.get(ha.host.host_info.remote(), timeout=60)
    assert {f"{a}.cotton", f"{b}.cotton"} <= set(hosted["shards"])

    # the neighbour kept its book and serves on in the same process
    more = make_orders(b, "cotton", 20, seed=99, prefix="n-")
    results = ray.get(hb.submit.remote(more), timeout=60)
    assert [r["client_order_id"] for r in results] == [c.client_order_id for c in more]
    ib2 = ray.get(hb.info.remote(), timeout=60)
    assert ib2["pid"] == ib["pid"] and ib2["committed_seq"] > ib["committed_seq"]

    # a closed shard answers "not hosted" there (nothing runs), while the host serves the other one
    assert ray.get(ha.host.close.remote(f"{a}.cotton"), timeout=60) is True
    with pytest.raises(Exception, match="not held by host"):
        ray.get(ha.submit.remote(make_orders(a, "cotton", 1, seed=5, prefix="x-")), timeout=60)
    assert len(db_events(pg_dsn, f"{a}.cotton")) == ia["committed_seq"]
    assert ray.get(hb.info.remote(), timeout=60)["pid"] == ib["pid"]
    ray.get(rt.directory.get.remote(f"{a}.cotton"), timeout=60)  # the directory opens it again
    deadline = time.monotonic() + 30
    while True:
        try:
            assert ray.get(ha.engine_snapshot.remote(), timeout=30) == snap_a
            break
        except ray.exceptions.RayTaskError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _restart_directory(rt: Any, hosting: dict[str, str]) -> Any:
    """End the detached runtime's directory for good and start a new one over the same shards
    table (its shard hosts are detached too, so they outlive it)."""
    from actors.directory import get_or_create_directory
    from actors.shard_hosting import HostingPolicy

    ray.kill(rt.directory, no_restart=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            d = get_or_create_directory(
                rt.persistence, namespace=rt.namespace, detached=True, hosting=HostingPolicy(hosting)
            )
            ray.get(d.list.remote(), timeout=60)
            rt.directory = d
            return d
        except (ray.exceptions.RayActorError, ValueError):  # the old name is released asynchronously
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_restarted_directory_adopts_hosted_shards_or_moves_them_to_processes(
    ray_session: None, pg_dsn: str
) -> None:
    import uuid

    from actors.runtime import start_runtime
    from actors.settings import Settings

    a = unique_region()
    sid = f"{a}.cotton"
    hosting: dict[str, Any] = {"*": "commodity"}
    settings = Settings(
        ray_namespace=f"tdt-{uuid.uuid4().hex[:10]}", shard_creation="any", shard_hosting=hosting
    )
    rt = start_runtime(settings, pg_dsn, redis_url=REDIS_URL, detached=True)
    try:
        h = rt.shard(a, "cotton")
        ray.get(h.submit.remote(make_orders(a, "cotton", 120, seed=4, prefix="d-")), timeout=60)
        before = ray.get(h.info.remote(), timeout=60)
        snap = ray.get(h.engine_snapshot.remote(), timeout=60)

        d = _restart_directory(rt, hosting)  # the same setting: adopted where it runs
        h1 = ray.get(d.get.remote(sid), timeout=60)
        assert isinstance(h1, HostedShard) and h1._actor_id == h._actor_id
        assert ray.get(h1.info.remote(), timeout=60)["pid"] == before["pid"]

        d = _restart_directory(rt, {"*": "process"})  # hosting changed: a process per shard
        h2 = ray.get(d.get.remote(sid), timeout=60)
        assert not isinstance(h2, HostedShard)
        info = ray.get(h2.info.remote(), timeout=60)
        assert info["hosting"] == "process" and info["pid"] != before["pid"]
        assert info["committed_seq"] == before["committed_seq"]
        assert ray.get(h2.engine_snapshot.remote(), timeout=60) == snap
        held = ray.get(h.host.host_info.remote(), timeout=60)["shards"]
        assert sid not in held  # closed in its old host: one copy serves
        with pytest.raises(Exception, match="not held by host"):
            ray.get(h.submit.remote(make_orders(a, "cotton", 1, seed=6, prefix="y-")), timeout=60)
    finally:
        kill_namespace(rt.namespace)
