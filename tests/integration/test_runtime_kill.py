"""Kill test: while a client streams orders, a shard actor is killed (Ray restarts it) once the
snapshotter has stored a snapshot of it. Afterwards every acknowledged order is present, no event is
lost or duplicated, the recovered book equals a full-log replay, and retries with the same client
order ids return the original results."""

from __future__ import annotations

import threading
import time

import pytest
import ray

from bench.shard import make_orders
from tests.integration.conftest import (
    assert_gap_free,
    assert_projection_matches,
    db_events,
    db_rows,
    replay,
    stream_orders,
    unique_region,
)

pytestmark = pytest.mark.integration


def _key(r):
    return (r["status"], r["order_id"], r["client_order_id"], [a["allocation_id"] for a in r["allocations"]])


def test_kill_shard_mid_stream(td_runtime, pg_dsn):
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    before = ray.get(h.info.remote())
    sid = before["shard_id"]
    cmds = make_orders(region, "cotton", 400, seed=11, prefix="k")
    acked: dict[str, dict] = {}
    errors: list[str] = []
    stream_orders(h, cmds[:150], acked, errors)  # a history first, then a snapshot of it (every 40 events)
    deadline = time.monotonic() + 60
    while not db_rows(pg_dsn, "SELECT 1 FROM snapshots WHERE shard_id = %s", sid):
        assert time.monotonic() < deadline, "the snapshotter stored no snapshot"
        time.sleep(0.05)
    t = threading.Thread(target=stream_orders, args=(h, cmds[150:], acked, errors))
    t.start()
    while len(acked) < 170:  # kill mid-stream
        time.sleep(0.005)
    ray.kill(h, no_restart=False)
    t.join(timeout=180)
    assert not t.is_alive()
    assert errors, "the kill should have failed at least one call"
    after = ray.get(h.info.remote())
    assert after["pid"] != before["pid"] and after["recoveries"] >= 1
    assert after["last_snapshot_seq"] > 0  # recovered from a snapshot plus later events
    # the start's recovery time, by kind: a new actor, then one Ray restarted after the kill
    assert (before["start_kind"], after["start_kind"]) == ("cold", "restart")
    assert 0 < after["start_recovery_s"] < 60

    events = db_events(pg_dsn, sid)
    assert_gap_free(events)
    accepted = {
        e.payload.order.client_order_id: e.payload.order.order_id
        for e in events
        if e.type == "ORDER_ACCEPTED"
    }
    assert len(accepted) == sum(1 for e in events if e.type == "ORDER_ACCEPTED")  # no duplicates
    assert set(acked) == {c.client_order_id for c in cmds}
    for coid, r in acked.items():
        assert r["status"] == "ACCEPTED" and accepted[coid] == r["order_id"]

    snap = ray.get(h.engine_snapshot.remote())
    assert snap["seq"] == events[-1].seq
    assert replay(region, "cotton", events).snapshot() == snap
    assert_projection_matches(pg_dsn, sid, snap)

    # retries after the restart return the original results and change nothing
    retried = []
    for j in range(0, len(cmds), 100):
        retried += ray.get(h.submit.remote(cmds[j : j + 100]))
    for r in retried:
        assert r["duplicate"] is True
        assert (
            _key(r) == _key(acked[r["client_order_id"]])
            or r["order_id"] == acked[r["client_order_id"]]["order_id"]
        )
    assert db_events(pg_dsn, sid)[-1].seq == events[-1].seq


def test_restart_recovers_exact_state(td_runtime, pg_dsn):
    """A killed idle shard comes back with the same engine state (snapshot + later events)."""
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    ray.get(h.submit.remote(make_orders(region, "cotton", 150, seed=3, prefix="z")))
    snap = ray.get(h.engine_snapshot.remote())
    ray.kill(h, no_restart=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            assert ray.get(h.engine_snapshot.remote(), timeout=30) == snap
            break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
