"""The recovery part of ``tradedesk bench shard``: fill one shard's log with real engine events (and
snapshots), start its actor, kill it, and time both recoveries (``--recovery-events``).

Units: seconds, events.
"""

from __future__ import annotations

import time
from typing import Any


def fill_log(dsn: str, region: str, n_events: int, snapshot_every: int, batch: int) -> tuple[int, float]:
    """Write about ``n_events`` real engine events of one shard straight into the event store (same
    rows and COPY path as the persistence actor, without the Ray hop), with a snapshot every
    ``snapshot_every`` events. Returns (last seq, seconds)."""
    import asyncio

    import asyncpg

    from actors.core.engine import ShardEngine
    from bench.shard_orders import T0, make_orders
    from persistence.event_store import batch_rows, encode_snapshot
    from persistence.pg_store import PostgresEventStore

    async def run() -> int:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        store = PostgresEventStore(pool, method="copy")
        eng = ShardEngine(region, "cotton", "price_time")
        last_snap = 0
        i = 0
        chunk = 20_000
        while eng.seq < n_events:
            cmds = make_orders(region, "cotton", chunk, seed=1000 + i, prefix=f"r{i}-", ts0=T0 + i * chunk)
            for j in range(0, len(cmds), batch):
                res = eng.process(cmds[j : j + batch])
                await store.append(batch_rows(eng.shard_id, res.events))
                if eng.seq >= n_events:  # the tail after the last snapshot is replayed from events
                    break
                if snapshot_every and eng.seq // snapshot_every > last_snap // snapshot_every:
                    await store.save_snapshot(eng.shard_id, eng.seq, encode_snapshot(eng.snapshot()))
                    last_snap = eng.seq
            i += 1
        await pool.close()
        return int(eng.seq)

    t0 = time.perf_counter()
    seq = asyncio.run(run())
    return seq, time.perf_counter() - t0


def recovery(rt: Any, dsn: str, n_events: int, snapshot_every: int, batch: int) -> dict[str, Any]:
    """Fill one shard's log to about ``n_events`` events, start its actor (recovery on start), then
    kill it with restart and time the second recovery too (the runtime's snapshotter paused
    meanwhile, so both start from the snapshots written with the log)."""
    import ray

    region = "IN-RJ"
    ray.get(rt.snapshotter.pause.remote())  # recover from the snapshots fill_log writes, no others
    seq, fill_s = fill_log(dsn, region, n_events, snapshot_every, batch)
    t0 = time.perf_counter()
    h = rt.shard(region, "cotton")
    first = ray.get(h.info.remote())
    start_wall = time.perf_counter() - t0
    assert first["committed_seq"] == seq, (first, seq)
    ray.kill(h, no_restart=False)
    t1 = time.perf_counter()
    while True:
        try:
            after = ray.get(h.info.remote(), timeout=600)
            if after["pid"] != first["pid"] and not after["dirty"]:
                break
        except Exception:
            pass
        time.sleep(0.05)
    restart_wall = time.perf_counter() - t1
    assert after["committed_seq"] == seq, (after, seq)
    ray.get(rt.snapshotter.resume.remote())
    return {
        "recovery_events": seq,
        "recovery_snapshot_every": snapshot_every,
        "recovery_snapshot_seq": after["last_snapshot_seq"],
        "recovery_replayed_events": after["recovered_events"],
        "recovery_s": round(after["recovery_s"], 3),
        "recovery_restart_wall_s": round(restart_wall, 3),
        "recovery_first_start_s": round(first["recovery_s"], 3),
        "recovery_start_kinds": [first.get("start_kind"), after.get("start_kind")],
        "recovery_actor_start_s": [first.get("start_recovery_s"), after.get("start_recovery_s")],
        "recovery_first_start_wall_s": round(start_wall, 3),
        "recovery_fill_s": round(fill_s, 1),
    }
