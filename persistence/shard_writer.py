"""The writer of one shard's log: the :class:`persistence.store.EventStore` a shard actor appends to
directly, on its own small asyncpg pool (no shared persistence actor, no Ray hop per batch), plus the
Redis fan-out of what it committed.

- :class:`ShardWriter`: a :class:`~persistence.pg_store.PostgresEventStore` over a pool of
  ``pool_size`` (default 2) connections per event loop (asyncpg pools belong to one loop: each loop
  that calls gets a pool of its own; :meth:`ShardWriter.aclose` closes the caller's and the commit
  thread's). Appends run in a :class:`CommitThread`, a loop of their own, so a commit's round trips
  go on while the shard's loop matches the next batch (``bench shard`` measures both ways). Batches
  are appended by binary ``COPY`` in one transaction each, fenced by the ``(shard_id, seq)`` primary
  key (:func:`persistence.pg_store.fenced_commit`). Pools survive a PostgreSQL restart (asyncpg
  replaces broken connections on acquire).
- :class:`EventFanout`: after a commit, the batch's events are published in seq order to the Redis
  channel ``td:events:<shard_id>`` as JSON ``{"shard_id", "seq", "type", "ts", "payload"}``. The JSON
  is made from the stored MessagePack (:func:`actors.core.events.msgpack_to_json`) by a background
  task, so publishing never delays the acknowledgement, and a Redis failure never fails a commit
  (the stream's readers fill gaps from PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import msgspec

from actors.core.events import msgpack_to_json
from actors.core.ids import events_channel
from persistence.event_store import BatchRows
from persistence.pg_store import PostgresEventStore
from persistence.store import EventRow, Snapshot

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITER_APP_PREFIX = "td-writer:"
"""``application_name`` prefix of the shard writers' connections (``td-writer:<shard id>``)."""

_envelope = msgspec.json.Encoder().encode
QUEUE_BATCHES = 10_000
"""Batches waiting for Redis at most; beyond it a batch is dropped from the live stream (logged)."""


class EventFanout:
    """Publishes committed batches to Redis from a background task of the running loop.
    ``redis_url``: None = publish nothing."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._redis: Any = None
        self._queue: asyncio.Queue[BatchRows] | None = None
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0

    def publish(self, rows: BatchRows) -> None:
        """Queue a committed batch (returns at once; the JSON is made in the background)."""
        if not self.redis_url or not rows.events:
            return
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue(maxsize=QUEUE_BATCHES)
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        try:
            self._queue.put_nowait(rows)
        except asyncio.QueueFull:
            self.dropped += len(rows.events)
            log.warning("event publish queue full; dropping %d events of %s", len(rows.events), rows.shard_id)

    @staticmethod
    def messages(rows: BatchRows) -> list[bytes]:
        """The JSON messages of a batch, one per event, in seq order."""
        sid = rows.shard_id
        out = []
        for _s, seq, typ, _v, body, ts in rows.events:
            payload = msgspec.Raw(msgpack_to_json(body))
            out.append(_envelope({"shard_id": sid, "seq": seq, "type": typ, "ts": ts, "payload": payload}))
        return out

    async def _run(self, queue: asyncio.Queue[BatchRows]) -> None:
        import redis.asyncio as aioredis

        while True:
            rows = await queue.get()
            channel = events_channel(rows.shard_id)
            try:
                msgs = self.messages(rows)
                if self._redis is None:
                    self._redis = aioredis.Redis.from_url(str(self.redis_url))
                pipe = self._redis.pipeline(transaction=False)
                for m in msgs:
                    pipe.publish(channel, m)
                await pipe.execute()
                self.published += len(msgs)
            except Exception as exc:  # never fail a commit because of fan-out
                log.warning("publish to %s failed: %s", channel, exc)
                self._redis = None

    async def aclose(self) -> None:
        """Stop the background task and close the Redis connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


class CommitThread:
    """An asyncio loop in a daemon thread where a writer runs its appends: the COPY's steps (and the
    fan-out's JSON) then go on while the shard's own loop is busy matching, instead of waiting for
    it between steps. ``run(coro)`` schedules ``coro`` there and returns an awaitable of its result
    for the caller's loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name[:60], daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """``coro`` on the thread's loop, as a future of the calling loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        """Stop the loop; the thread then closes it and ends."""
        self.loop.call_soon_threadsafe(self.loop.stop)


class ShardWriter:
    """One shard's event store on its own pool. ``dsn``: PostgreSQL URL; ``redis_url``: where to
    publish committed events (None = nowhere); ``pool_size``: connections per loop (one append at a
    time, the other for reads and snapshots); ``method``: ``copy`` | ``executemany``; ``name``: the
    connections' ``application_name`` (``td-writer:<shard id>``: operators and ``bench shard`` find
    the writer's PostgreSQL backends in ``pg_stat_activity`` by it); ``commit_thread``: run appends
    and the fan-out in a :class:`CommitThread` (the default; False keeps them on the caller's loop,
    the measured baseline of ``bench shard --no-commit-thread``)."""

    def __init__(
        self,
        dsn: str,
        redis_url: str | None = None,
        pool_size: int = 2,
        method: str = "copy",
        name: str = "td-writer",
        commit_thread: bool = True,
    ) -> None:
        self.dsn = dsn
        self.name = name
        self.pool_size = pool_size
        self.method = method
        self.fanout = EventFanout(redis_url)
        self._stores: dict[asyncio.AbstractEventLoop, tuple[Any, PostgresEventStore]] = {}
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.commit_thread = commit_thread
        self._thread: CommitThread | None = None  # started by the first append, ended by aclose

    async def store(self) -> PostgresEventStore:
        """The store over this loop's pool (created on first use in each loop)."""
        loop = asyncio.get_running_loop()
        found = self._stores.get(loop)
        if found is not None:
            return found[1]
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            if loop not in self._stores:
                import asyncpg

                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    command_timeout=60,
                    server_settings={"application_name": self.name[:63]},
                )
                self._stores[loop] = (pool, PostgresEventStore(pool, self.method))
        return self._stores[loop][1]

    async def aclose(self) -> None:
        """Close this loop's pool, and the commit thread's pool and fan-out (the next call opens
        new ones)."""
        loop = asyncio.get_running_loop()
        thread, self._thread = self._thread, None
        if thread is not None:
            await thread.run(self._close_here())
            thread.stop()
        else:
            await self.fanout.aclose()
        entry = self._stores.pop(loop, None)
        self._locks.pop(loop, None)
        if entry is not None:
            await entry[0].close()

    async def _close_here(self) -> None:
        await self.fanout.aclose()
        entry = self._stores.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].close()

    async def append(self, rows: BatchRows) -> int:
        """See :meth:`persistence.store.EventStore.append`; committed events are then published.
        Runs in the commit thread when there is one."""
        if self.commit_thread:
            if self._thread is None:
                self._thread = CommitThread(f"commit:{self.name}")
            return await self._thread.run(self._append(rows))
        return await self._append(rows)

    async def _append(self, rows: BatchRows) -> int:
        last = await (await self.store()).append(rows)
        self.fanout.publish(rows)
        return last

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """See :meth:`persistence.store.EventStore.read_events`."""
        return await (await self.store()).read_events(shard_id, after_seq, limit)

    async def max_seq(self, shard_id: str) -> int:
        """See :meth:`persistence.store.EventStore.max_seq`."""
        return await (await self.store()).max_seq(shard_id)

    async def place_results(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Results of past place commands by (party_id, client_order_id), from the ``client_orders``
        projection (see :meth:`persistence.pg_store.PostgresEventStore.place_results`)."""
        return await (await self.store()).place_results(keys)

    async def save_snapshot(self, shard_id: str, seq: int, state: str | bytes) -> None:
        """See :meth:`persistence.store.EventStore.save_snapshot`."""
        await (await self.store()).save_snapshot(shard_id, seq, state)

    async def latest_snapshot(self, shard_id: str) -> Snapshot | None:
        """See :meth:`persistence.store.EventStore.latest_snapshot`."""
        return await (await self.store()).latest_snapshot(shard_id)

    async def latest_snapshot_seq(self, shard_id: str) -> int:
        """See :meth:`persistence.pg_store.PostgresEventStore.latest_snapshot_seq`."""
        return await (await self.store()).latest_snapshot_seq(shard_id)

    async def upsert_shard(
        self, shard_id: str, region: str, commodity: str, status: str = "ACTIVE", node_id: str | None = None
    ) -> None:
        """See :meth:`persistence.store.EventStore.upsert_shard`."""
        await (await self.store()).upsert_shard(shard_id, region, commodity, status, node_id)

    async def list_shards(self) -> list[dict[str, Any]]:
        """See :meth:`persistence.store.EventStore.list_shards`."""
        return await (await self.store()).list_shards()
