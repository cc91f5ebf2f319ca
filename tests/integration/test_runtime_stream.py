"""A stream of commands through two shard actors: PostgreSQL ends with every event, gap-free per
shard; the projections equal the books; a full-log replay equals the live book; committed events
are published to Redis in seq order; the directory lists both shards."""

from __future__ import annotations

import json
import time

import pytest
import ray

from actors.core.commands import CancelOrder
from bench.shard import make_orders
from tests.integration.conftest import (
    assert_gap_free,
    assert_projection_matches,
    db_events,
    db_rows,
    replay,
    unique_region,
)

pytestmark = pytest.mark.integration


def test_stream_two_shards_log_and_projections(td_runtime, pg_dsn, redis_url):
    import redis

    regions = [unique_region(), unique_region()]
    shards = [td_runtime.shard(r, "cotton") for r in regions]
    infos = ray.get([h.info.remote() for h in shards])
    sids = [i["shard_id"] for i in infos]
    r = redis.Redis.from_url(redis_url)
    sub = r.pubsub()
    sub.subscribe(*[f"td:events:{sid}" for sid in sids])
    while sub.get_message(timeout=1.0) is not None:  # subscribe confirmations
        pass

    streams = [make_orders(reg, "cotton", 240, seed=i, prefix="s") for i, reg in enumerate(regions)]
    acked: list[dict[str, dict]] = [{}, {}]
    refs = []
    for j in range(0, 240, 20):
        refs = [h.submit.remote(s[j : j + 20]) for h, s in zip(shards, streams, strict=True)]
        for k, res in enumerate(ray.get(refs)):
            for rr in res:
                acked[k][rr["client_order_id"]] = rr
    # cancel a few open orders on shard 0
    snap0 = ray.get(shards[0].engine_snapshot.remote())
    open_ids = [o for o in snap0["orders"] if o["open_kg"] > 0][:5]
    res = ray.get(
        shards[0].submit.remote(
            [
                CancelOrder(ts=2_000_000_000_000, party_id=o["party_id"], order_id=o["order_id"])
                for o in open_ids
            ]
        )
    )
    assert all(x["status"] == "OK" for x in res), res

    for k, (h, reg, sid) in enumerate(zip(shards, regions, sids, strict=True)):
        assert all(v["status"] == "ACCEPTED" for v in acked[k].values())
        events = db_events(pg_dsn, sid)
        assert_gap_free(events)
        snap = ray.get(h.engine_snapshot.remote())
        assert events[-1].seq == snap["seq"] == ray.get(h.info.remote())["committed_seq"]
        assert replay(reg, "cotton", events).snapshot() == snap
        assert_projection_matches(pg_dsn, sid, snap)
        allocs = db_rows(pg_dsn, "SELECT * FROM allocations WHERE shard_id = %s ORDER BY seq", sid)
        alloc_events = [e for e in events if e.type == "ALLOCATED"]
        assert len(allocs) == len(alloc_events) > 0
        for a, e in zip(allocs, alloc_events, strict=True):
            assert (a["allocation_id"], a["quantity_kg"], a["price"]) == (
                e.payload.allocation_id,
                e.payload.quantity_kg,
                e.payload.price,
            )
            assert a["buyer_id"] == e.payload.buyer_id and a["seller_id"] == e.payload.seller_id
            assert a["risk"] == e.payload.risk and a["breakdown"] == e.payload.breakdown
        # every acknowledged order is in the log
        accepted = {e.payload.order.client_order_id for e in events if e.type == "ORDER_ACCEPTED"}
        assert set(acked[k]) <= accepted

    # Redis fan-out: every committed event, in seq order per shard
    got: dict[str, list[int]] = {sid: [] for sid in sids}
    want = {sid: len(db_events(pg_dsn, sid)) for sid in sids}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(len(got[s]) < want[s] for s in sids):
        m = sub.get_message(timeout=0.5)
        if m and m["type"] == "message":
            d = json.loads(m["data"])
            assert set(d) == {"shard_id", "seq", "type", "ts", "payload"}
            got[d["shard_id"]].append(d["seq"])
    sub.close()
    for sid in sids:
        assert got[sid] == list(range(1, want[sid] + 1))

    listing = {d["shard_id"]: d for d in td_runtime.list_shards()}
    for sid in sids:
        assert listing[sid]["status"] == "UP"
        assert listing[sid]["seq"] == want[sid]
        assert listing[sid]["node_id"]
        assert listing[sid]["book_size"] is not None
    rows = {x["shard_id"]: x for x in db_rows(pg_dsn, "SELECT * FROM shards")}
    assert set(sids) <= set(rows)


def test_drain_snapshots_and_refuses(td_runtime, pg_dsn):
    from actors.shard_outcomes import ShardDraining

    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    ray.get(h.submit.remote(make_orders(region, "cotton", 30, seed=5, prefix="d")))
    info = ray.get(td_runtime.directory.drain.remote(info_sid := ray.get(h.info.remote())["shard_id"]))
    assert info["draining"] and info["last_snapshot_seq"] == info["committed_seq"]
    snaps = db_rows(pg_dsn, "SELECT seq FROM snapshots WHERE shard_id = %s ORDER BY seq DESC", info_sid)
    assert snaps[0]["seq"] == info["committed_seq"]
    with pytest.raises(ShardDraining):
        try:
            ray.get(h.submit.remote(make_orders(region, "cotton", 1, seed=6, prefix="e")))
        except ray.exceptions.RayTaskError as exc:
            raise exc.as_instanceof_cause() from None
    status = db_rows(pg_dsn, "SELECT status FROM shards WHERE shard_id = %s", info_sid)[0]["status"]
    assert status == "DRAINED"
    ray.get(td_runtime.directory.resume.remote(info_sid))
    res = ray.get(h.submit.remote(make_orders(region, "cotton", 1, seed=6, prefix="e")))
    assert res[0]["status"] == "ACCEPTED"


def test_move_restarts_shard_from_snapshot(td_runtime, pg_dsn):
    """Move = drain + stop + start from the snapshot (on another node when there is one)."""
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    ray.get(h.submit.remote(make_orders(region, "cotton", 50, seed=8, prefix="m")))
    old = ray.get(h.info.remote())
    snap = ray.get(h.engine_snapshot.remote())
    new = ray.get(td_runtime.directory.move.remote(old["shard_id"]))
    assert new["pid"] != old["pid"] and not new["draining"]
    assert new["committed_seq"] == old["committed_seq"] == new["last_snapshot_seq"]
    assert new["recovered_events"] == 0  # loaded from the drain snapshot alone
    h2 = td_runtime.shard(region, "cotton")
    assert ray.get(h2.engine_snapshot.remote()) == snap
    res = ray.get(h2.submit.remote(make_orders(region, "cotton", 5, seed=9, prefix="n")))
    assert all(r["status"] == "ACCEPTED" for r in res)
