"""The baselines of ``tradedesk bench shard``, measured in the same run without Ray: the old design
of one transaction per order (``--baseline-orders``) and the append path alone, binary COPY vs
executemany on the same batches (``--method-orders``).

Units: orders/s, events/s.
"""

from __future__ import annotations

import time
from typing import Any

from bench import BENCH_REGIONS
from bench.shard_orders import make_orders


def baseline(dsn: str, n: int) -> dict[str, Any]:
    """The old design: one call per order, one transaction per order (single-row inserts of its
    events), through one connection."""
    import asyncio

    import asyncpg

    from actors.core.engine import ShardEngine
    from persistence.event_store import batch_rows

    async def run() -> float:
        conn = await asyncpg.connect(dsn)
        eng = ShardEngine("IN-KA", "cotton")
        cmds = make_orders("IN-KA", "cotton", n, seed=99, prefix="x")
        from persistence.pg_store import PostgresEventStore

        class _One:
            def acquire(self) -> Any:
                class _Ctx:
                    async def __aenter__(self_inner) -> Any:
                        return conn

                    async def __aexit__(self_inner, *a: Any) -> None:
                        return None

                return _Ctx()

        store = PostgresEventStore(_One(), method="executemany")
        t0 = time.perf_counter()
        for c in cmds:
            res = eng.process([c])
            await store.append(batch_rows(eng.shard_id, res.events))
        dt = time.perf_counter() - t0
        await conn.close()
        return dt

    dt = asyncio.run(run())
    return {"baseline_orders": n, "baseline_orders_per_s": round(n / dt, 1)}


def append_methods(dsn: str, n_orders: int, batch: int) -> dict[str, Any]:
    """Append path alone (no Ray): COPY vs executemany, same batches, events/s."""
    import asyncio

    import asyncpg

    from actors.core.engine import ShardEngine
    from persistence.event_store import batch_rows
    from persistence.pg_store import PostgresEventStore

    out: dict[str, Any] = {}
    for k, method in enumerate(("executemany", "copy")):
        eng = ShardEngine(BENCH_REGIONS[-1 - k], "cotton")  # real regions no throughput shard uses
        cmds = make_orders(eng.region, "cotton", n_orders, seed=7, prefix="m")
        prepared = []
        for j in range(0, len(cmds), batch):
            res = eng.process(cmds[j : j + batch])
            prepared.append(batch_rows(eng.shard_id, res.events))

        async def run(method: str = method, prepared: list[Any] = prepared) -> tuple[float, int]:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
            store = PostgresEventStore(pool, method=method)
            t0 = time.perf_counter()
            for rows in prepared:
                await store.append(rows)
            dt = time.perf_counter() - t0
            await pool.close()
            return dt, sum(len(r.events) for r in prepared)

        dt, ne = asyncio.run(run())
        out[f"{method}_events_per_s"] = round(ne / dt, 1)
    return out
