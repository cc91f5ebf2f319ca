"""Micro-batching of shard commands: many concurrent requests, one actor call per batch.

Each shard has a lane: a bounded FIFO of ``(command, future)``. A lane's worker waits for the first
command, then collects more for at most ``window_ms`` (or until ``max_batch`` are queued) and sends
them as one ``submit(shard_id, commands) -> results`` call; ``results[i]`` resolves the future of
``commands[i]``. Up to ``max_inflight`` calls per shard may be outstanding (Ray runs one caller's calls
to a synchronous actor in submission order, so order is kept while transfer overlaps execution).

Back-pressure: a lane never holds more than ``queue_max`` commands (queued + in flight); beyond that
:class:`Overloaded` is raised at once and the gateway answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

SubmitFn = Callable[[str, list[Any]], Awaitable[list[Any]]]
BatchHook = Callable[[str, int, float], None]


class Overloaded(Exception):
    """The shard's queue is full; retry after ``retry_after_s`` seconds."""

    def __init__(self, shard_id: str, depth: int, retry_after_s: int = 1) -> None:
        super().__init__(f"shard {shard_id} queue full ({depth} commands)")
        self.shard_id = shard_id
        self.depth = depth
        self.retry_after_s = retry_after_s


class BatchFailed(Exception):
    """The actor call of the batch this command was in failed (nothing is known to be committed)."""


class _Lane:
    __slots__ = ("items", "wake", "depth", "task", "inflight")

    def __init__(self, max_inflight: int) -> None:
        self.items: deque[tuple[Any, asyncio.Future[Any]]] = deque()
        self.wake = asyncio.Event()
        self.depth = 0  # queued + in flight
        self.task: asyncio.Task[None] | None = None
        self.inflight = asyncio.Semaphore(max_inflight)


class MicroBatcher:
    """Per-shard micro-batcher. Create inside the running event loop; ``close()`` on shutdown."""

    def __init__(
        self,
        submit: SubmitFn,
        window_ms: float = 1.5,
        max_batch: int = 256,
        queue_max: int = 4096,
        max_inflight: int = 2,
        call_timeout_s: float = 60.0,
        on_batch: BatchHook | None = None,
    ) -> None:
        self.submit_fn = submit
        self.window_s = max(0.0, window_ms) / 1000.0
        self.max_batch = max(1, max_batch)
        self.queue_max = max(1, queue_max)
        self.max_inflight = max(1, max_inflight)
        self.call_timeout_s = call_timeout_s
        self.on_batch = on_batch
        self.lanes: dict[str, _Lane] = {}
        self._closed = False
        self._calls: set[asyncio.Task[None]] = set()

    def depth(self, shard_id: str) -> int:
        """Commands queued or in flight for ``shard_id``."""
        lane = self.lanes.get(shard_id)
        return lane.depth if lane else 0

    def depths(self) -> dict[str, int]:
        return {k: v.depth for k, v in self.lanes.items()}

    async def submit(self, shard_id: str, commands: list[Any]) -> list[Any]:
        """Queue ``commands`` for ``shard_id`` (all or none) and wait for their results, in order.

        Raises:
            Overloaded: the lane would exceed ``queue_max``.
            BatchFailed: the actor call failed (the cause is chained).
        """
        if self._closed:
            raise Overloaded(shard_id, 0)
        lane = self.lanes.get(shard_id)
        if lane is None:
            lane = self.lanes[shard_id] = _Lane(self.max_inflight)
            lane.task = asyncio.get_running_loop().create_task(self._run(shard_id, lane))
        if lane.depth + len(commands) > self.queue_max:
            raise Overloaded(shard_id, lane.depth)
        loop = asyncio.get_running_loop()
        futs = []
        for c in commands:
            f: asyncio.Future[Any] = loop.create_future()
            lane.items.append((c, f))
            futs.append(f)
        lane.depth += len(commands)
        lane.wake.set()
        return list(await asyncio.gather(*futs))

    async def _run(self, shard_id: str, lane: _Lane) -> None:
        while not self._closed:
            if not lane.items:
                lane.wake.clear()
                await lane.wake.wait()
                if len(lane.items) < self.max_batch and self.window_s > 0:
                    await asyncio.sleep(self.window_s)
            await lane.inflight.acquire()
            n = min(len(lane.items), self.max_batch)
            if n == 0:
                lane.inflight.release()
                continue
            batch = [lane.items.popleft() for _ in range(n)]
            t = asyncio.get_running_loop().create_task(self._call(shard_id, lane, batch))
            self._calls.add(t)
            t.add_done_callback(self._calls.discard)

    async def _call(self, shard_id: str, lane: _Lane, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        t0 = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                self.submit_fn(shard_id, [c for c, _ in batch]), timeout=self.call_timeout_s
            )
            if len(results) != len(batch):
                raise RuntimeError(f"shard returned {len(results)} results for {len(batch)} commands")
        except BaseException as exc:  # noqa: BLE001 - routed to every waiter
            err = BatchFailed(f"shard {shard_id} call failed")
            err.__cause__ = exc
            for _, f in batch:
                if not f.done():
                    f.set_exception(err)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for (_, f), r in zip(batch, results, strict=True):
                if not f.done():
                    f.set_result(r)
            if self.on_batch:
                self.on_batch(shard_id, len(batch), time.perf_counter() - t0)
        finally:
            lane.depth -= len(batch)
            lane.inflight.release()

    async def close(self) -> None:
        """Stop the lane workers; commands still queued fail with :class:`Overloaded`."""
        self._closed = True
        for shard_id, lane in self.lanes.items():
            if lane.task:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await lane.task
            while lane.items:
                _, f = lane.items.popleft()
                if not f.done():
                    f.set_exception(Overloaded(shard_id, 0))
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
