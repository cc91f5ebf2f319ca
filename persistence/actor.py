"""The persistence actor: an async Ray actor that owns an asyncpg pool and the event store.

It serves the shards registry to the shard directory (``list_shards``, ``upsert_shard``), tells
shard actors where their own writer connects (:meth:`PersistenceService.writer_config`: shards
append their batches directly, :mod:`persistence.shard_writer`), and keeps the whole event-store
API for tools and tests (``append`` publishes what it committed like a shard writer does).

The pool is opened lazily and reopened after a PostgreSQL restart (asyncpg replaces broken
connections on acquire), so a call during an outage raises and later calls succeed again.
Named ``persistence`` in the runtime's namespace, ``max_restarts=-1``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray

from actors.core.ids import PERSISTENCE_ACTOR
from persistence.event_store import BatchRows
from persistence.pg_store import PostgresEventStore
from persistence.shard_writer import EventFanout
from persistence.store import EventRow, Snapshot

log = logging.getLogger(__name__)

ACTOR_NAME = PERSISTENCE_ACTOR


class PersistenceService:
    """Implementation of the persistence actor (also usable directly inside an event loop).

    ``dsn``: PostgreSQL URL. ``method``: ``copy`` | ``executemany``. ``pool_size``: max connections.
    """

    def __init__(
        self,
        dsn: str,
        redis_url: str | None = None,
        method: str = "copy",
        pool_size: int = 4,
        commit_thread: bool = True,
    ) -> None:
        self.dsn = dsn
        self.redis_url = redis_url
        self.commit_thread = commit_thread
        self.method = method
        self.pool_size = pool_size
        self._pool: Any = None
        self._store: PostgresEventStore | None = None
        self._lock = asyncio.Lock()
        self.fanout = EventFanout(redis_url)
        self.batches = 0
        self.events = 0
        self.failures = 0

    async def _get_store(self) -> PostgresEventStore:
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                import asyncpg

                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    command_timeout=60,
                )
                self._store = PostgresEventStore(self._pool, self.method)
        return self._store

    async def append(self, rows: BatchRows) -> int:
        """Commit one batch's events in one transaction; return its last seq.
        Raises on any database error (nothing of the batch is then committed)."""
        store = await self._get_store()
        try:
            last = await store.append(rows)
        except Exception:
            self.failures += 1
            raise
        self.batches += 1
        self.events += len(rows.events)
        self.fanout.publish(rows)
        return last

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """``(seq, type, ts, schema_version, payload_json)`` rows with seq > ``after_seq``."""
        return await (await self._get_store()).read_events(shard_id, after_seq, limit)

    async def max_seq(self, shard_id: str) -> int:
        """Highest committed seq of a shard."""
        return await (await self._get_store()).max_seq(shard_id)

    async def place_results(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Results of past place commands (see :meth:`PostgresEventStore.place_results`)."""
        return await (await self._get_store()).place_results(keys)

    async def save_snapshot(self, shard_id: str, seq: int, state: str | bytes) -> None:
        """Store a snapshot of a shard's engine after ``seq`` (JSON text or zlib-compressed JSON)."""
        await (await self._get_store()).save_snapshot(shard_id, seq, state)

    async def latest_snapshot(self, shard_id: str) -> Snapshot | None:
        """``(seq, state)`` of the newest snapshot, or None (see ``event_store.decode_snapshot``)."""
        return await (await self._get_store()).latest_snapshot(shard_id)

    async def upsert_shard(
        self, shard_id: str, region: str, commodity: str, status: str = "ACTIVE", node_id: str | None = None
    ) -> None:
        """Register a shard in the ``shards`` table or update its status/node."""
        await (await self._get_store()).upsert_shard(shard_id, region, commodity, status, node_id)

    async def list_shards(self) -> list[dict[str, Any]]:
        """Rows of the ``shards`` table as dicts."""
        return await (await self._get_store()).list_shards()

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Run a read-only query (tests, operators); rows as dicts."""
        await self._get_store()
        async with self._pool.acquire() as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]

    async def writer_config(self) -> dict[str, Any]:
        """Keyword arguments ``dsn``, ``redis_url``, ``commit_thread`` for a shard's own
        :class:`persistence.shard_writer.ShardWriter`."""
        return {"dsn": self.dsn, "redis_url": self.redis_url, "commit_thread": self.commit_thread}

    async def stats(self) -> dict[str, Any]:
        """Counters: committed batches and events, failed appends, append method."""
        return {
            "batches": self.batches,
            "events": self.events,
            "failures": self.failures,
            "method": self.method,
        }

    async def ping(self) -> bool:
        """True when PostgreSQL answers."""
        await self._get_store()
        async with self._pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT true"))


PersistenceActor = ray.remote(max_restarts=-1, max_task_retries=0)(PersistenceService)


def get_or_create_persistence(
    dsn: str,
    redis_url: str | None = None,
    namespace: str | None = None,
    method: str = "copy",
    detached: bool = False,
    placement: dict[str, Any] | None = None,
    commit_thread: bool = True,
) -> Any:
    """Handle of the named ``persistence`` actor in ``namespace``, created if missing; ``placement``:
    more actor options (the runtime pins it to the head node of a cluster); ``commit_thread``: what
    it tells the shards' writers (:class:`persistence.shard_writer.ShardWriter`)."""
    opts: dict[str, Any] = {"name": ACTOR_NAME, "get_if_exists": True, "num_cpus": 0, **(placement or {})}
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    return PersistenceActor.options(**opts).remote(dsn, redis_url, method, commit_thread=commit_thread)
