"""The projector actor: a thin Ray shell around :class:`persistence.projector.Projector`.

One named actor ``projector`` in the runtime's namespace (``max_restarts=-1``, no CPU reserved),
started by :func:`actors.runtime.start_runtime`. Its constructor starts the projection loop in a
thread with its own event loop and asyncpg pool, so a restarted actor resumes from the checkpoints
at once, without waiting for a call. Methods are answered from the Ray worker thread: ``info``
(counters), ``pause``/``resume`` (stop and restart writing, for maintenance and tests),
``catch_up`` (shutdown) and ``rebuild`` (see :meth:`persistence.projector.Projector.rebuild`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from typing import Any

import ray

from actors.core.ids import PROJECTOR_ACTOR
from actors.placement import named_actor_options

log = logging.getLogger(__name__)


class ProjectorHost:
    """The Ray actor class. ``dsn``: PostgreSQL; ``page``: events per transaction; ``idle_s``: poll
    period when caught up (s); ``nice``: added to the projection thread's nice value (Linux: per
    thread; 0 = none). Projections follow the log and may lag under load; matching may not, so by
    default the thread runs at the lowest CPU priority, as the snapshot builder does."""

    def __init__(self, dsn: str, page: int = 5_000, idle_s: float = 0.02, nice: int = 19) -> None:
        from persistence.projector import Projector

        self.dsn, self.page, self.idle_s, self.nice = dsn, page, idle_s, nice
        self.projector: Projector | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="projector", daemon=True)
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

        from persistence.projection_store import init_connection
        from persistence.projector import Projector

        self._stop = asyncio.Event()
        while True:
            try:
                pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, init=init_connection)
                break
            except Exception:
                await asyncio.sleep(0.5)
        self.projector = Projector(pool, self.page)
        self._ready.set()
        while not self._stop.is_set():  # the loop never ends on an error: it starts again
            try:
                await self.projector.run(self._stop, self.idle_s)
            except Exception as exc:
                log.warning("projector loop failed, restarting: %s: %s", type(exc).__name__, exc)
                self.projector.cursors.clear()
                await asyncio.sleep(1.0)

    def _call(self, coro: Any, timeout: float = 3600) -> Any:
        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def ping(self) -> dict[str, Any]:
        """The projector's counters (:meth:`persistence.projector.Projector.info`) and ``pid``."""
        import os

        assert self.projector is not None
        return {**self.projector.info(), "pid": os.getpid()}

    info = ping

    def pause(self) -> dict[str, Any]:
        """Stop writing projections (the checkpoints stay where they are)."""
        assert self.projector is not None
        self.projector.paused = True
        return self.ping()

    def resume(self) -> dict[str, Any]:
        """Write projections again after :meth:`pause`."""
        assert self.projector is not None
        self.projector.paused = False
        return self.ping()

    def catch_up(self, timeout_s: float = 120.0) -> bool:
        """Wait until every shard's projection has reached its committed head (True) or
        ``timeout_s`` passed (False); see :meth:`persistence.projector.Projector.wait_caught_up`."""
        assert self.projector is not None
        done: bool = self._call(self.projector.wait_caught_up(timeout_s), timeout_s + 30)
        return done

    def rebuild(self, shard_id: str | None = None) -> dict[str, int]:
        """Rebuild one shard's projections (or all) from the log; ``{shard_id: events}``."""
        assert self.projector is not None
        result: dict[str, int] = self._call(self.projector.rebuild(shard_id))
        return result


ProjectorActor = ray.remote(max_restarts=-1, max_task_retries=0)(ProjectorHost)


def get_or_create_projector(
    dsn: str,
    *,
    namespace: str | None = None,
    detached: bool = False,
    placement: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    """Handle of the named ``projector`` actor in ``namespace``, created if missing; ``placement``:
    Ray options pinning it (the head node of a cluster, :func:`actors.placement.head_placement`);
    ``kw`` go to :class:`ProjectorHost`."""
    opts = named_actor_options(PROJECTOR_ACTOR, namespace, detached, **(placement or {}))
    return ProjectorActor.options(**opts).remote(dsn, **kw)
