"""One load at a time per key: concurrent cache misses share a single lookup.

When a cached entry (an API key, a party's links) expires under load, every request in flight
would otherwise query PostgreSQL for the same row at once. :class:`SingleFlight` runs the first
request's load as its own task and hands the same result (or error) to every request that asks for
that key before it ends; a request that is cancelled (client gone) does not cancel the load for the
others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Per-key de-duplication of concurrent async loads (create and use inside one event loop)."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The result of ``load()`` for ``key``: a load already running for ``key`` is joined, else
        ``load()`` starts. Raises what ``load()`` raises."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._running[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: an error no one awaited any more is not logged as lost
