"""The projector: follows every shard's committed events and keeps the projections (``orders``,
``allocations``, ``proposals``, ``reservations``, ``client_orders``) up to date, asynchronously.

Per shard it keeps a :class:`actors.core.engine.ShardEngine` fed with the same events
(:func:`persistence.projections.project_page`), so an order's projected state is the core's own.
Each page (at most ``page`` events, in seq order) is written with the shard's checkpoint in one
transaction (:func:`persistence.projection_store.write_page`): a crash between pages never applies
a page twice or loses one. On (re)start, or when the checkpoint moved under it (a second projector,
a rebuild), a shard's engine is restored from its latest snapshot with seq <= checkpoint plus the
events up to the checkpoint. A transaction-scoped advisory lock per shard keeps two projectors (or
a projector and a rebuild) from writing the same shard at once.

:meth:`Projector.run` polls the ``shards`` table and the committed heads every ``idle_s`` seconds
when idle (no wait while a shard is behind). :meth:`Projector.rebuild` empties a shard's projections
and projects its whole log from a fresh engine in one transaction (``tradedesk projections
rebuild``). Hosted by the Ray actor ``projector`` (:mod:`actors.projector_actor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from actors.core.engine import ShardEngine
from persistence import projection_store as ps
from persistence.event_store import decode_event, decode_snapshot
from persistence.pg_store import PostgresEventStore
from persistence.projections import project_page

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Cursor:
    engine: ShardEngine
    seq: int


class Projector:
    """Projections of every shard over an asyncpg ``pool`` (created with
    ``init=persistence.projection_store.init_connection``). ``page``: events per transaction."""

    def __init__(self, pool: Any, page: int = 5_000) -> None:
        self.pool = pool
        self.page = int(page)
        self.store = PostgresEventStore(pool)
        self.cursors: dict[str, _Cursor] = {}
        self.counters = dict.fromkeys(("pages", "events", "reloads", "conflicts", "errors"), 0)
        self.project_s = 0.0
        self.paused = False

    async def _restore(self, shard_id: str, region: str, commodity: str, seq: int) -> _Cursor:
        """An engine at ``seq``: the latest snapshot with seq <= ``seq``, then the events up to it."""
        r = await self.pool.fetchrow(
            "SELECT seq, state::text AS state, blob FROM snapshots WHERE shard_id = $1 AND seq <= $2 "
            "ORDER BY seq DESC LIMIT 1",
            shard_id,
            seq,
        )
        if r is None:
            cur = _Cursor(ShardEngine(region, commodity), 0)
        else:
            state = bytes(r["blob"]) if r["blob"] is not None else r["state"]
            cur = _Cursor(ShardEngine.from_snapshot(decode_snapshot(state)), int(r["seq"]))
        while cur.seq < seq:
            rows = await self.store.read_events(shard_id, cur.seq, min(self.page, seq - cur.seq))
            if not rows:
                raise RuntimeError(f"{shard_id}: the log ends at {cur.seq}, the checkpoint is {seq}")
            for row in rows:
                cur.engine.apply(decode_event(row))
            cur.seq = rows[-1][0]
        self.counters["reloads"] += 1
        return cur

    async def project_shard(self, shard_id: str, region: str, commodity: str, head: int | None = None) -> int:
        """Project one page of ``shard_id`` after its checkpoint; return the events written (0 when
        caught up, locked by another writer, or the checkpoint moved: the next call reloads)."""
        cur = self.cursors.get(shard_id)
        if cur is None:
            async with self.pool.acquire() as conn:
                seq = await ps.checkpoint(conn, shard_id)
            cur = self.cursors[shard_id] = await self._restore(shard_id, region, commodity, seq)
        if head is not None and head <= cur.seq:
            return 0
        rows = await self.store.read_events(shard_id, cur.seq, self.page)
        if not rows:
            return 0
        t0 = time.perf_counter()
        expect = cur.seq
        del self.cursors[shard_id]  # the engine moves ahead of the checkpoint until the commit
        page = project_page(cur.engine, [decode_event(r) for r in rows])
        async with self.pool.acquire() as conn, conn.transaction():
            if not await ps.lock_shard(conn, shard_id):
                return 0
            try:
                await ps.write_page(conn, page, expect)
            except ps.CheckpointMoved:
                self.counters["conflicts"] += 1
                return 0
        cur.seq = page.last_seq
        self.cursors[shard_id] = cur
        self.counters["pages"] += 1
        self.counters["events"] += len(rows)
        self.project_s += time.perf_counter() - t0
        return len(rows)

    async def step(self) -> int:
        """One pass over every shard behind its head: at most one page each; events written."""
        done = 0
        for sid, pos in (await ps.positions(self.pool)).items():
            if pos["head"] <= pos["projector_seq"]:
                cur = self.cursors.get(sid)
                if cur is not None and cur.seq != pos["projector_seq"]:
                    self.cursors.pop(sid, None)  # moved by a rebuild: reload on the next page
                continue
            cur = self.cursors.get(sid)
            if cur is not None and cur.seq != pos["projector_seq"]:
                self.cursors.pop(sid, None)
            done += await self.project_shard(sid, pos["region"], pos["commodity"], pos["head"])
        return done

    async def run(self, stop: asyncio.Event, idle_s: float = 0.05) -> None:
        """Project until ``stop`` is set. One projector per database writes at a time: it holds a
        session advisory lock (released when its connection closes, e.g. a killed process); the
        others wait as standbys. Errors (database down) are logged and retried after ``idle_s``
        (at least 0.5 s), the shards' engines reloaded from their checkpoints."""
        leader: Any = None
        try:
            while not stop.is_set():
                if self.paused:
                    await asyncio.sleep(idle_s)
                    continue
                try:
                    if leader is None:
                        leader = await self._lead()
                        if leader is None:
                            await asyncio.sleep(0.5)
                            continue
                    done = await self.step()
                except Exception as exc:
                    self.counters["errors"] += 1
                    self.cursors.clear()
                    await self._resign(leader)
                    leader = None
                    log.warning("projector: %s: %s", type(exc).__name__, exc)
                    await asyncio.sleep(max(idle_s, 0.5))
                    continue
                if not done:
                    await asyncio.sleep(idle_s)
        finally:
            await self._resign(leader)

    async def _lead(self) -> Any:
        """A pool connection holding the projector's leader lock, or None when another has it."""
        conn = await self.pool.acquire()
        got = await conn.fetchval("SELECT pg_try_advisory_lock($1, 0)::text", ps.LOCK_NS + 1)
        if got == "true":
            self.cursors.clear()  # another projector may have written since this one last did
            return conn
        await self.pool.release(conn)
        return None

    async def _resign(self, conn: Any) -> None:
        """Give up the leader lock and always return its connection to the pool (a dead one, e.g.
        after a PostgreSQL restart, is terminated first): a connection kept out of the pool on every
        failed round would exhaust it and stall the projector for good."""
        if conn is None:
            return
        try:
            await conn.execute("SELECT pg_advisory_unlock_all()")
        except Exception:
            with contextlib.suppress(Exception):  # already closed or already back in the pool
                conn.terminate()
        with contextlib.suppress(Exception):
            await self.pool.release(conn)

    async def rebuild(self, shard_id: str | None = None) -> dict[str, int]:
        """Empty and re-project one shard (or every shard of the ``shards`` table) from its whole log,
        from a fresh engine (no snapshot), in one transaction per shard; a live projector skips the
        shard meanwhile and reloads after. Returns ``{shard_id: events projected}``; raises
        ``KeyError`` for an unknown shard."""
        shards = {s: (p["region"], p["commodity"]) for s, p in (await ps.positions(self.pool)).items()}
        if shard_id is not None and shard_id not in shards:
            raise KeyError(shard_id)
        out: dict[str, int] = {}
        for sid in [shard_id] if shard_id is not None else list(shards):
            region, commodity = shards[sid]
            engine, n = ShardEngine(region, commodity), 0
            async with self.pool.acquire() as conn, conn.transaction():
                await ps.lock_shard(conn, sid, wait=True)
                await ps.clear_shard(conn, sid)
                seq = 0
                while True:
                    rows = await self.store.read_events(sid, seq, self.page)
                    if not rows:
                        break
                    page = project_page(engine, [decode_event(r) for r in rows])
                    await ps.write_page(conn, page, seq)
                    seq, n = page.last_seq, n + len(rows)
            self.cursors.pop(sid, None)
            out[sid] = n
        return out

    async def wait_caught_up(self, timeout_s: float = 120.0) -> bool:
        """Wait (the :meth:`run` loop projecting) until no shard is behind its committed head: True,
        or False after ``timeout_s`` seconds or while paused."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.paused:
            pos = await ps.positions(self.pool)
            if all(p["projector_lag_events"] == 0 for p in pos.values()):
                return True
            await asyncio.sleep(0.02)
        return False

    def info(self) -> dict[str, Any]:
        """Counters (``pages``, ``events``, ``reloads``, ``conflicts``, ``errors``), ``project_s``
        (seconds spent projecting and writing), ``events_per_s`` over that time, per-shard ``seqs``."""
        s = self.project_s
        return {
            **self.counters,
            "project_s": round(s, 3),
            "events_per_s": round(self.counters["events"] / s, 1) if s > 0 else None,
            "paused": self.paused,
            "seqs": {k: c.seq for k, c in self.cursors.items()},
        }
