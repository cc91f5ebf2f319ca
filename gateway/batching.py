"""Micro-batching of shard commands: many concurrent requests, one actor call per batch.

Each shard has a lane: a bounded FIFO of chunks ``(commands, future)`` (one chunk per request, a
request's commands stay together; one larger than ``max_batch`` is cut into ``max_batch`` pieces).
The window adapts to load: when no call to the shard is in flight, a request is sent at once (no
added wait when idle); while every slot is taken, requests queue and the next call takes everything
queued, up to ``max_batch`` commands, as soon as a slot frees. When a slot is free while another
call is still in flight, the next call waits at most ``window_ms`` for company (0 = not at all).
Up to ``max_inflight`` calls per shard may be outstanding (Ray runs one caller's calls to an actor
in submission order, so order is kept while transfer overlaps execution). One
``submit(shard_id, commands) -> results`` call per batch; ``results[i]`` answers ``commands[i]``.

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
    __slots__ = ("items", "wake", "depth", "queued", "calls", "task", "inflight")

    def __init__(self, max_inflight: int) -> None:
        self.items: deque[tuple[list[Any], asyncio.Future[list[Any]]]] = deque()
        self.wake = asyncio.Event()
        self.depth = 0  # commands queued + in flight
        self.queued = 0  # commands queued
        self.calls = 0  # actor calls in flight
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
        n = len(commands)
        if lane.depth + n > self.queue_max:
            raise Overloaded(shard_id, lane.depth)
        loop = asyncio.get_running_loop()
        futs = []
        for i in range(0, n, self.max_batch):
            f: asyncio.Future[list[Any]] = loop.create_future()
            lane.items.append((commands[i : i + self.max_batch] if n > self.max_batch else commands, f))
            futs.append(f)
        lane.depth += n
        lane.queued += n
        lane.wake.set()
        if len(futs) == 1:
            return await futs[0]
        return [r for part in await asyncio.gather(*futs) for r in part]

    async def _run(self, shard_id: str, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not lane.items:
                lane.wake.clear()
                await lane.wake.wait()
            await lane.inflight.acquire()
            if lane.calls and lane.queued < self.max_batch and self.window_s > 0:
                # a slot is free but the shard is still busy with another call: let the batch grow
                await asyncio.sleep(self.window_s)
            batch: list[tuple[list[Any], asyncio.Future[list[Any]]]] = []
            size = 0
            while lane.items and (not batch or size + len(lane.items[0][0]) <= self.max_batch):
                chunk = lane.items.popleft()
                batch.append(chunk)
                size += len(chunk[0])
            if not batch:
                lane.inflight.release()
                continue
            lane.queued -= size
            lane.calls += 1
            t = loop.create_task(self._call(shard_id, lane, batch, size))
            self._calls.add(t)
            t.add_done_callback(self._calls.discard)

    async def _call(
        self, shard_id: str, lane: _Lane, batch: list[tuple[list[Any], asyncio.Future[list[Any]]]], size: int
    ) -> None:
        t0 = time.perf_counter()
        commands = batch[0][0] if len(batch) == 1 else [c for cmds, _ in batch for c in cmds]
        try:
            results = await asyncio.wait_for(self.submit_fn(shard_id, commands), timeout=self.call_timeout_s)
            if len(results) != size:
                raise RuntimeError(f"shard returned {len(results)} results for {size} commands")
        except BaseException as exc:  # noqa: BLE001 - routed to every waiter
            err = BatchFailed(f"shard {shard_id} call failed")
            err.__cause__ = exc
            for _, f in batch:
                if not f.done():
                    f.set_exception(err)
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            at = 0
            for cmds, f in batch:
                k = len(cmds)
                if not f.done():
                    f.set_result(results if len(batch) == 1 else results[at : at + k])
                at += k
            if self.on_batch:
                self.on_batch(shard_id, size, time.perf_counter() - t0)
        finally:
            lane.depth -= size
            lane.calls -= 1
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
                lane.queued = 0
                if not f.done():
                    f.set_exception(Overloaded(shard_id, 0))
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
