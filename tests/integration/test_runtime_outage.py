"""Outages under load: the shard writer's PostgreSQL connections are killed mid-stream (the writer
lives in the shard actor, so this is how its link to the log breaks without the shard dying; the
persistence actor, killed too, is no longer on the commit path), then PostgreSQL itself restarts
mid-stream. The shard reports errors (no false acknowledgements: "nothing acknowledged" or, when the
commit's answer was lost, "outcome unknown"), resumes when they are back, and nothing acknowledged is
lost; the log stays gap-free and equals the book."""

from __future__ import annotations

import threading
import time

import pytest
import ray

from bench.shard import make_orders
from persistence.shard_writer import WRITER_APP_PREFIX
from tests.integration.conftest import (
    assert_gap_free,
    assert_projection_matches,
    db_events,
    db_rows,
    replay,
    stream_orders,
    unique_region,
)
from tests.integration.pg_control import pg_online, pg_start_if_down, pg_stop

pytestmark = pytest.mark.integration


def _check(pg_dsn, h, region, sid, cmds, acked):
    events = db_events(pg_dsn, sid)
    assert_gap_free(events)
    accepted = {
        e.payload.order.client_order_id: e.payload.order.order_id
        for e in events
        if e.type == "ORDER_ACCEPTED"
    }
    assert len(accepted) == sum(1 for e in events if e.type == "ORDER_ACCEPTED")
    assert set(acked) == {c.client_order_id for c in cmds}
    for coid, r in acked.items():  # every acknowledged order is committed, with the acked id
        assert accepted[coid] == r["order_id"]
    snap = ray.get(h.engine_snapshot.remote())
    assert snap["seq"] == events[-1].seq
    assert replay(region, "cotton", events).snapshot() == snap
    assert_projection_matches(pg_dsn, sid, snap)


def test_writer_connections_killed_mid_stream(td_runtime, pg_dsn):
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    sid = ray.get(h.info.remote())["shard_id"]
    cmds = make_orders(region, "cotton", 300, seed=21, prefix="p")
    acked: dict[str, dict] = {}
    errors: list[str] = []
    t = threading.Thread(target=stream_orders, args=(h, cmds, acked, errors, 150.0, 0.1))
    t.start()
    while len(acked) < 80:
        time.sleep(0.01)
    ray.kill(td_runtime.persistence, no_restart=False)  # no longer on the commit path
    killed = 0
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:  # until a batch's append has been cut
        rows = db_rows(
            pg_dsn,
            "SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE application_name = %s",
            WRITER_APP_PREFIX + sid,
        )
        killed += len(rows)
        time.sleep(0.02)
    t.join(timeout=200)
    assert not t.is_alive()
    assert killed >= 1
    # the connection died during an append: either definitely not committed, or outcome unknown
    assert any("ShardUnavailable" in e or "CommitUnknown" in e for e in errors), errors
    info = ray.get(h.info.remote())
    assert info["failures"] + info["unknown"] >= 1 and info["recoveries"] >= 2
    _check(pg_dsn, h, region, sid, cmds, acked)


def test_postgres_restart_mid_stream(td_runtime, pg_dsn):
    assert pg_online()
    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    sid = ray.get(h.info.remote())["shard_id"]
    cmds = make_orders(region, "cotton", 300, seed=22, prefix="q")
    acked: dict[str, dict] = {}
    errors: list[str] = []
    t = threading.Thread(target=stream_orders, args=(h, cmds, acked, errors, 150.0, 0.1))
    t.start()
    try:
        while len(acked) < 80:
            time.sleep(0.01)
        pg_stop()
        time.sleep(1.0)  # batches submitted now must fail, not be acknowledged
        n_acked_down = len(acked)
        time.sleep(0.5)
        assert len(acked) == n_acked_down  # nothing acknowledged while PostgreSQL is down
    finally:
        pg_start_if_down()
    t.join(timeout=200)
    assert not t.is_alive()
    assert pg_online()
    assert any("ShardUnavailable" in e or "CommitUnknown" in e for e in errors), errors
    _check(pg_dsn, h, region, sid, cmds, acked)
