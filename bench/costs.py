"""What a durable order costs in ``tradedesk bench shard``: CPU seconds of the shard processes and of
their writers' PostgreSQL backends (psutil), the in-memory core's rate on the same commands, and the
stored size of the events.

Units: CPU seconds (user + system), orders/s, bytes.
"""

from __future__ import annotations

import time
from typing import Any

from actors.core.commands import PlaceOrder


def cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process in ``pids`` (psutil)."""
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = t.user + t.system
    return out


def memory_mib(pids: list[int]) -> dict[str, float]:
    """RSS, PSS (shared pages split between the processes that map them) and USS (private) in MiB,
    summed over the live processes in ``pids`` (psutil)."""
    import psutil

    tot = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
    for pid in pids:
        try:
            m = psutil.Process(pid).memory_full_info()
        except psutil.Error:
            continue
        for k in tot:
            tot[k] += getattr(m, k) / 2**20
    return {k: round(v, 1) for k, v in tot.items()}


def writer_backends(dsn: str, shard_ids: list[str]) -> list[int]:
    """PostgreSQL backend pids of the shards' writers (``application_name`` ``td-writer:<shard>``)."""
    import asyncio

    import asyncpg

    from persistence.shard_writer import WRITER_APP_PREFIX

    async def run() -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            names = [WRITER_APP_PREFIX + s for s in shard_ids]
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = ANY($1::text[])", names
            )
        finally:
            await conn.close()
        return [int(r[0]) for r in rows]

    return asyncio.run(run())


def core_rate(streams: list[list[PlaceOrder]], batch: int, profile: str) -> float:
    """Orders/s of the in-memory core alone (no Ray, no database) on the same command streams, with
    the collector settings of a shard process (:func:`actors.gc_tuning.tune_gc_for_matching`)."""
    import gc

    from actors.core.engine import ShardEngine
    from actors.gc_tuning import tune_gc_for_matching

    previous = tune_gc_for_matching()
    total, secs = 0, 0.0
    try:
        for cmds in streams:
            eng = ShardEngine(cmds[0].region, "cotton", profile)
            t0 = time.perf_counter()
            for j in range(0, len(cmds), batch):
                eng.process(cmds[j : j + batch])
            secs += time.perf_counter() - t0
            total += len(cmds)
    finally:
        gc.set_threshold(*previous)
    return total / secs if secs else 0.0


def event_bytes(dsn: str) -> dict[str, Any]:
    """Stored size of the run's events: payload bytes per event and the events table (heap, TOAST and
    indexes) per event."""
    import asyncio

    import asyncpg

    async def run() -> dict[str, Any]:
        conn = await asyncpg.connect(dsn)
        try:
            n, body = await conn.fetchrow(
                "SELECT count(*), avg(coalesce(octet_length(body), octet_length(payload::text))) FROM events"
            )
            total = await conn.fetchval("SELECT pg_total_relation_size('events')")
        finally:
            await conn.close()
        if not n:
            return {}
        return {
            "event_payload_bytes": round(float(body), 1),
            "events_table_bytes_per_event": round(total / n, 1),
        }

    return asyncio.run(run())
