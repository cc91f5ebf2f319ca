"""The snapshotter actor: a thin Ray shell around :class:`actors.snapshot_builder.SnapshotBuilder`,
so shards take their periodic snapshots off their matching loops.

One named actor ``snapshotter`` in the runtime's namespace (on the head node like the projector,
no CPU reserved, ``max_restarts=-1``), started by :func:`actors.runtime.start_runtime`. Its
constructor starts the builder's loop in a thread with its own event loop and asyncpg pool: every
``check_s`` seconds one :meth:`~actors.snapshot_builder.SnapshotBuilder.run_once` (the shards'
positions in one query, then the due snapshots, one shard at a time). That thread runs at a lower
CPU priority (``nice`` +19 by default), so on a machine that also hosts shards matching wins the
CPU. The loop never ends on an error; a restarted actor goes on from the stored snapshots. Methods
are answered from the Ray worker thread: ``ping``/``info`` (counters), ``run_once`` (a pass now:
tests, operators), ``pause``/``resume``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from dataclasses import asdict
from typing import Any

import ray

from actors.core.ids import SNAPSHOTTER_ACTOR
from actors.placement import named_actor_options

log = logging.getLogger(__name__)


class SnapshotterHost:
    """The Ray actor class. ``dsn``: PostgreSQL; ``every``, ``interval_s``, ``page``, ``profile``,
    ``keep``: see :class:`~actors.snapshot_builder.SnapshotBuilder`; ``check_s``: seconds between
    passes; ``nice``: added to the builder thread's nice value (Linux: per thread; 0 = none)."""

    def __init__(
        self,
        dsn: str,
        every: int = 100_000,
        interval_s: float = 300.0,
        check_s: float = 5.0,
        page: int = 20_000,
        profile: str | None = None,
        keep: int = 4,
        nice: int = 19,
    ) -> None:
        from actors.gc_tuning import tune_gc_for_matching
        from actors.snapshot_builder import SnapshotBuilder

        tune_gc_for_matching()  # the process restores whole books
        self.dsn, self.check_s, self.nice = dsn, check_s, nice
        self.paused = False
        self._settings: dict[str, Any] = {
            "every": every,
            "interval_s": interval_s,
            "page": page,
            "profile": profile,
            "keep": keep,
        }
        self.builder: SnapshotBuilder | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._wake: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="snapshotter", daemon=True)
        self._thread.start()
        self._ready.wait(60)

    def _main(self) -> None:
        if self.nice:
            with contextlib.suppress(OSError):  # raising one's own nice value needs no privilege
                os.nice(self.nice)
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        import asyncpg

        from actors.snapshot_builder import SnapshotBuilder
        from persistence.pg_store import PostgresEventStore

        self._wake = asyncio.Event()
        while True:
            try:
                pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=2)
                break
            except Exception:
                await asyncio.sleep(0.5)
        self.builder = SnapshotBuilder(PostgresEventStore(pool), **self._settings)
        self._ready.set()
        while True:  # one pass every check_s; an error only costs this pass
            if not self.paused:
                try:
                    await self.builder.run_once()
                except Exception as exc:
                    log.warning("snapshot pass failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_s)
            self._wake.clear()

    def ping(self) -> dict[str, Any]:
        """The builder's settings and counters (:meth:`~actors.snapshot_builder.SnapshotBuilder.info`),
        ``check_s``, ``paused`` and ``pid``."""
        assert self.builder is not None
        return {**self.builder.info(), "check_s": self.check_s, "paused": self.paused, "pid": os.getpid()}

    info = ping

    def run_once(self, timeout_s: float = 600.0) -> list[dict[str, Any]]:
        """Build every due snapshot now (waits for a pass in progress first); the builds as dicts
        (:class:`~actors.snapshot_builder.Built`)."""
        assert self.builder is not None
        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            self.builder.run_once(), self._loop
        )
        return [asdict(b) for b in fut.result(timeout_s)]

    def pause(self) -> dict[str, Any]:
        """Stop the periodic passes (``run_once`` still builds)."""
        self.paused = True
        return self.ping()

    def resume(self) -> dict[str, Any]:
        """Start the periodic passes again, the next one at once."""
        self.paused = False
        if self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        return self.ping()


SnapshotterActor = ray.remote(max_restarts=-1, max_task_retries=0)(SnapshotterHost)


def get_or_create_snapshotter(
    dsn: str,
    *,
    namespace: str | None = None,
    detached: bool = False,
    placement: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """Handle of the named ``snapshotter`` actor in ``namespace``, created if missing; ``placement``:
    Ray options pinning it (the head node of a cluster, :func:`actors.placement.head_placement`);
    ``kw`` go to :class:`SnapshotterHost`."""
    opts = named_actor_options(SNAPSHOTTER_ACTOR, namespace, detached, **(placement or {}))
    return SnapshotterActor.options(**opts).remote(dsn, **kw)
