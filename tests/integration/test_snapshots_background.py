"""Background snapshots on PostgreSQL (issue 13's must-show): a shard matches a stream of crossing
places, cancels and amends (partial fills included) while the snapshot builder, in another thread
with its own event loop and pool, takes several snapshots from the committed log. Each stored
snapshot equals the live engine's at its seq; a shard recovered from the latest snapshot plus the
tail, an engine rebuilt from the whole log with no snapshot and the live shard have the same state
and answer the same queries. In the runtime, the ``snapshotter`` actor snapshots the directory's
shards (background mode) from the log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import pytest

from actors.core import events as ev
from actors.core import orders as st
from actors.core.engine import ShardEngine
from actors.shard_service import ShardService
from actors.snapshot_builder import Built, SnapshotBuilder
from bench.core import REGION, Workload
from bench.shard import make_orders
from persistence.event_store import decode_event, decode_snapshot
from persistence.migrate import apply_migrations
from persistence.pg_store import PostgresEventStore
from persistence.store import EventRow
from tests.integration.conftest import db_events, db_rows, replay, unique_region

pytestmark = pytest.mark.integration

EVERY = 1_500  # events between background snapshots (the size rule)
BATCHES, TAIL_BATCHES, SIZE, TARGET = 80, 5, 100, 300  # ~10,600 events, eviction from ~5,400


def _builder_thread(dsn: str, stop: threading.Event, built: list[Built]) -> threading.Thread:
    """The builder in a thread of its own (own loop, own pool), passing every 10 ms until ``stop``."""

    async def run() -> None:
        import asyncpg

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            builder = SnapshotBuilder(PostgresEventStore(pool), every=EVERY, interval_s=0)
            while not stop.is_set():
                built.extend(await builder.run_once())
                await asyncio.sleep(0.01)
        finally:
            await pool.close()

    return threading.Thread(target=asyncio.run, args=(run(),), name="builder")


async def _all_rows(store: PostgresEventStore, shard_id: str) -> list[EventRow]:
    rows: list[EventRow] = []
    while page := await store.read_events(shard_id, rows[-1][0] if rows else 0, 2_000):
        rows += page
    return rows


def _answers(engine: ShardEngine) -> tuple[Any, ...]:
    return engine.depth(levels=50), engine.best_bid_ask(), engine.stats()


def test_snapshots_taken_mid_stream_equal_a_full_replay(pg_dsn: str) -> None:
    """The must-show: snapshots built while orders are matched; recovery from them = full replay."""
    apply_migrations(pg_dsn)

    async def run() -> dict[str, Any]:
        import asyncpg

        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=3)
        try:
            store = PostgresEventStore(pool)
            svc = ShardService(REGION, "cotton", store, snapshot_every=EVERY)  # background mode
            assert await svc.start(5.0)
            await store.upsert_shard(svc.shard_id, REGION, "cotton")
            engine = svc.engine
            assert engine is not None
            stop, built = threading.Event(), list[Built]()
            builder = _builder_thread(pg_dsn, stop, built)
            builder.start()
            workload, live = Workload(seed=13, profile=engine.profile), dict[int, dict[str, Any]]()
            try:
                for i in range(BATCHES + TAIL_BATCHES):
                    if i == BATCHES:  # the last batches leave a tail after the latest snapshot
                        stop.set()
                        await asyncio.to_thread(builder.join)
                    await svc.submit(workload.batch(engine, SIZE, TARGET))
                    live[svc.committed_seq] = engine.snapshot()
            finally:
                stop.set()
                await asyncio.to_thread(builder.join)
            await svc.flush()
            async with pool.acquire() as conn:
                snaps = await conn.fetch(
                    "SELECT seq, blob FROM snapshots WHERE shard_id = $1 ORDER BY seq", svc.shard_id
                )
            stored = {int(r[0]): decode_snapshot(bytes(r[1])) for r in snaps}
            rows = await _all_rows(store, svc.shard_id)

            # (a) a new shard instance: the latest snapshot plus the tail after it
            recovered = ShardService(REGION, "cotton", PostgresEventStore(pool), snapshot_every=EVERY)
            assert await recovered.start(5.0)
            # (b) the whole log from seq 0, no snapshot
            replayed = ShardEngine(REGION, "cotton")
            for row in rows:
                replayed.apply(decode_event(row))
            return {
                "svc": svc,
                "built": built,
                "stored": stored,
                "live": live,
                "rows": rows,
                "recovered": recovered,
                "replayed": replayed,
                "recovered_answers": (
                    await recovered.query("depth", levels=50),
                    await recovered.query("best_bid_ask"),
                    await recovered.query("stats"),
                ),
            }
        finally:
            await pool.close()

    out = asyncio.run(run())
    svc, built, stored, live, rows = out["svc"], out["built"], out["stored"], out["live"], out["rows"]
    first, last = rows[0][0], rows[-1][0]
    assert (first, last, len(rows)) == (1, svc.committed_seq, last)
    kinds = Counter(r[1] for r in rows)  # the stream really matched, cancelled, amended
    assert kinds[ev.ALLOCATED] > 100 and kinds[ev.CANCELLED] > 100 and kinds[ev.AMENDED] > 50
    final = live[last]
    assert any(o["status"] == st.PARTIALLY_FILLED for o in final["orders"])
    assert final["retention"]["evicted_any"]  # closed orders left the window mid-stream

    # several snapshots, all taken while batches were being matched, each the live engine's at its seq
    assert len(built) >= 3 and sorted(stored) == [b.seq for b in built]
    assert all(first < b.seq < last for b in built)
    assert [b.base_seq for b in built] == [0] + [b.seq for b in built[:-1]]
    for b in built:
        assert stored[b.seq] == live[b.seq]
    assert stored[built[-1].seq]["retention"]["evicted_any"]  # the windows are in the snapshots too
    assert svc.info()["last_snapshot_seq"] in stored  # the shard learned one of them

    recovered, replayed = out["recovered"], out["replayed"]
    info = recovered.info()
    assert (info["recovery_source"], info["last_snapshot_seq"]) == ("store", built[-1].seq)
    assert info["recovered_events"] == last - built[-1].seq > 0
    assert recovered.engine.snapshot() == replayed.snapshot() == final
    assert out["recovered_answers"] == _answers(replayed) == _answers(svc.engine)


def test_runtime_snapshotter_builds_the_shards_snapshots(td_runtime: Any, pg_dsn: str) -> None:
    import ray

    region = unique_region()
    h = td_runtime.shard(region, "cotton")
    cmds = make_orders(region, "cotton", 300, seed=3, prefix="z")
    for j in range(0, len(cmds), 20):
        ray.get(h.submit.remote(cmds[j : j + 20]))
    info = ray.get(h.info.remote())
    sid, head = info["shard_id"], info["committed_seq"]
    assert info["snapshot_mode"] == "background" and head > 200
    sql = "SELECT seq, blob FROM snapshots WHERE shard_id = %s ORDER BY seq DESC LIMIT 1"
    deadline = time.monotonic() + 30
    while not (rows := db_rows(pg_dsn, sql, sid)) or rows[0]["seq"] <= head - 40:  # every 40 events
        assert time.monotonic() < deadline, "no snapshot within 40 events of the head"
        ray.get(td_runtime.snapshotter.run_once.remote())
    seq = rows[0]["seq"]
    events = [e for e in db_events(pg_dsn, sid) if e.seq <= seq]
    assert decode_snapshot(bytes(rows[0]["blob"])) == replay(region, "cotton", events).snapshot()
    stats = ray.get(td_runtime.snapshotter.ping.remote())
    assert stats["builds"] >= 1 and stats["errors"] == 0 and stats["last"][sid]["seq"] == seq
