"""The projector's lag during ``tradedesk bench shard``: a thread polling the projection positions of
the benchmark's shards (own asyncpg connection) for the largest lag and the time until the
projections caught up with the shards' heads.

Units: events, seconds.
"""

from __future__ import annotations

import threading
import time


class LagSampler(threading.Thread):
    """Samples the projector's lag of ``shard_ids`` every 50 ms (own asyncpg connection) until
    :meth:`stop_when_caught_up`: ``max_events``, ``max_s``, ``samples`` (lag s), ``caught_up_s``
    (seconds from start until every shard's projection reached its head after the load ended)."""

    def __init__(self, dsn: str, shard_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.dsn, self.shard_ids = dsn, shard_ids
        self.max_events, self.max_s = 0, 0.0
        self.samples: list[float] = []
        self.caught_up_s = 0.0
        self.error: str | None = None
        self._stop_at_catch_up = threading.Event()

    def run(self) -> None:
        import asyncio

        try:
            asyncio.run(self._poll())
        except Exception as exc:  # the run was interrupted and its database dropped: no report, no trace
            self.error = f"{type(exc).__name__}: {exc}"

    async def _poll(self) -> None:
        import asyncio

        import asyncpg

        from persistence.projection_store import positions

        conn = await asyncpg.connect(self.dsn)
        t0 = time.perf_counter()
        try:
            while True:
                pos = {s: p for s, p in (await positions(conn)).items() if s in self.shard_ids}
                behind = sum(p["projector_lag_events"] for p in pos.values())
                lag_s = max((p["projector_lag_s"] for p in pos.values()), default=0.0)
                self.max_events, self.max_s = max(self.max_events, behind), max(self.max_s, lag_s)
                self.samples.append(lag_s)
                if self._stop_at_catch_up.is_set() and behind == 0:
                    self.caught_up_s = time.perf_counter() - t0
                    return
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    def stop_when_caught_up(self, timeout: float = 600) -> None:
        self._stop_at_catch_up.set()
        self.join(timeout)
