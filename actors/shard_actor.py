"""The shard actor: a thin Ray shell around :class:`actors.shard_service.ShardService`.

One named actor per (region, commodity): ``shard:<shard_id>``, ``max_restarts=-1`` and
``max_task_retries=0`` (a batch is never re-run behind the client's back; the client retries with the
same client order ids and gets the original results). The shard writes its own log: a
:class:`persistence.shard_writer.ShardWriter` (its own 2-connection asyncpg pool, binary COPY, the
Redis fan-out after each commit) whose connection settings come from the persistence actor; no other
actor sits between a batch and its commit. Everything about batches, commits, rollback and recovery
is in ``actors/shard_service.py``. On (re)start the actor recovers before it takes commands and
records how long that took (``start_recovery_s``, ``start_kind``: ``cold`` for a new actor,
``restart`` after Ray restarted a dead one) in :meth:`ShardHost.info`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Sequence
from typing import Any

import ray

from actors import handover
from actors.core.ids import shard_actor_name, shard_id_for
from actors.gc_tuning import gc_paused
from actors.placement import MATCHING_RESOURCE, named_actor_options
from actors.risk_link import DeciderSpec
from actors.shard_outcomes import CommitUnknown, ShardDraining, ShardUnavailable
from actors.shard_service import ShardService
from persistence.shard_writer import WRITER_APP_PREFIX, ShardWriter

__all__ = ["CommitUnknown", "ShardActor", "ShardDraining", "ShardHost", "ShardUnavailable"]

actor_name = shard_actor_name


class ShardHost:
    """The Ray actor class: builds the service over the shard's own writer and forwards calls.

    ``persistence``: persistence actor handle (asked once for the writer's connection settings); the
    other arguments go to :class:`ShardService`.
    ``recovery_wait_s``: how long the constructor retries recovery while PostgreSQL is down;
    ``market_reference``: ``agmarknet`` (the shard's reference price is the state's modal price from
    the shipped Agmarknet files, docs/matching.md "Price bands") or ``none``."""

    def __init__(
        self,
        region: str,
        commodity: str,
        persistence: Any,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        decider: DeciderSpec = None,
        profile: str | None = None,
        recovery_page: int = 20_000,
        recovery_wait_s: float = 30.0,
        market_reference: str = "agmarknet",
        circuit_breaker: bool = True,
        standby: bool = False,
        snapshot_mode: str = "background",
    ) -> None:
        from actors.gc_tuning import tune_gc_for_matching
        from persistence.agmarknet_reference import market_reference as agmarknet_reference

        tune_gc_for_matching()  # the actor process hosts one book: avoid long gen-2 pauses
        ref = agmarknet_reference(region, commodity) if market_reference == "agmarknet" else None
        ctx = ray.get_runtime_context()
        self.start_kind = "restart" if ctx.was_current_actor_reconstructed else "cold"
        config = ray.get(persistence.writer_config.remote())
        self.writer = ShardWriter(**config, name=WRITER_APP_PREFIX + shard_id_for(region, commodity))
        self.service = ShardService(
            region,
            commodity,
            self.writer,
            decider,
            durability=durability,
            snapshot_every=snapshot_every,
            profile=profile,
            recovery_page=recovery_page,
            node_id=ctx.get_node_id(),
            market_reference=None if ref is None else (ref[0], "agmarknet", ref[1]),
            circuit_breaker=circuit_breaker,
            snapshot_mode=snapshot_mode,
        )
        # a standby (the next host of a live move, actors/handover.py) takes no commands until
        # promoted; a restarted host serves (its move, if any, is over or was aborted)
        self.service.draining = standby and not ray.get_runtime_context().was_current_actor_reconstructed
        # Ray runs __init__ outside the actor's event loop: recover on a loop of our own (a thread),
        # so the first command finds the shard ready; that loop's pool is closed with it.
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._start(recovery_wait_s)).result()
        self.start_recovery_s = time.perf_counter() - t0

    async def _start(self, wait_s: float) -> None:
        try:
            with gc_paused():  # the snapshot and the log tail build the whole book at once
                await self.service.start(wait_s)
        finally:
            await self.writer.aclose()

    async def submit(self, commands: Sequence[object]) -> list[dict[str, Any]]:
        """See :meth:`ShardService.submit`."""
        return await self.service.submit(commands)

    async def query(self, name: str, **kw: Any) -> Any:
        """See :meth:`ShardService.query`."""
        return await self.service.query(name, **kw)

    async def flush(self) -> int:
        """See :meth:`ShardService.flush`."""
        return await self.service.flush()

    async def snapshot_now(self) -> int:
        """See :meth:`ShardService.snapshot_now`."""
        return await self.service.snapshot_now()

    async def drain(self) -> dict[str, Any]:
        """See :meth:`ShardService.drain`."""
        return await self.service.drain()

    async def resume(self) -> dict[str, Any]:
        """See :meth:`ShardService.resume`."""
        return await self.service.resume()

    async def reload(self) -> int:
        """See :meth:`ShardService.reload`."""
        return await self.service.reload()

    async def engine_snapshot(self) -> dict[str, Any]:
        """See :meth:`ShardService.engine_snapshot`."""
        return await self.service.engine_snapshot()

    def info(self) -> dict[str, Any]:
        """:meth:`ShardService.info` plus ``start_kind`` (``cold`` | ``restart``), ``start_recovery_s``
        (seconds from the actor's construction to ready: snapshot + log tail, connection included),
        ``hosting`` (``process``: see :mod:`actors.shard_hosting`) and ``events_published`` /
        ``events_dropped`` (the Redis fan-out)."""
        fanout = self.writer.fanout
        return {
            **self.service.info(),
            "hosting": "process",
            "start_kind": self.start_kind,
            "start_recovery_s": round(self.start_recovery_s, 4),
            "events_published": fanout.published,
            "events_dropped": fanout.dropped,
        }

    async def fence(self) -> dict[str, Any]:
        """See :func:`actors.handover.fence`."""
        return await handover.fence(self.service)

    async def unfence(self) -> None:
        """Take commands again after a fence (a failed handover)."""
        self.service.draining = False

    async def catch_up(self) -> int:
        """See :func:`actors.handover.catch_up`."""
        return await handover.catch_up(self.service)

    async def promote(self, seq: int, drained: bool = False, snapshot_seq: int = 0) -> dict[str, Any]:
        """See :func:`actors.handover.promote`."""
        return handover.promote(self.service, seq, drained, snapshot_seq)


ShardActor = ray.remote(max_restarts=-1, max_task_retries=0)(ShardHost)


def matching_placement(cluster_resources: dict[str, float]) -> dict[str, Any]:
    """Actor options that pin a shard to matching nodes when the cluster has any, else nothing."""
    if cluster_resources.get(MATCHING_RESOURCE, 0) > 0:
        return {"resources": {MATCHING_RESOURCE: 1}}
    return {}


def create_shard_actor(
    region: str,
    commodity: str,
    persistence: Any,
    *,
    namespace: str | None = None,
    durability: str = "sync",
    snapshot_every: int = 100_000,
    decider: DeciderSpec = None,
    profile: str | None = None,
    scheduling_strategy: Any = "SPREAD",
    detached: bool = False,
    num_cpus: float = 0,
    market_reference: str = "agmarknet",
    circuit_breaker: bool = True,
    name: str | None = None,
    standby: bool = False,
    snapshot_mode: str = "background",
) -> Any:
    """Create (or get, if it exists) the named shard actor ``shard:<region>.<commodity>`` (``name``:
    another host name, :func:`actors.placement.host_name`; ``standby``: see :mod:`actors.handover`).

    When the cluster offers the custom resource :data:`MATCHING_RESOURCE` (the ``matching`` node type
    of ``cluster.yaml``), each shard asks for 1 unit of it, so shards land on matching nodes only
    (100 units per node = at most 100 shards per node); spread over them with ``scheduling_strategy``.
    """
    opts = named_actor_options(
        name or actor_name(shard_id_for(region, commodity)),
        namespace,
        detached,
        num_cpus,
        scheduling_strategy=scheduling_strategy,
        **matching_placement(ray.cluster_resources()),
    )
    return ShardActor.options(**opts).remote(
        region,
        commodity,
        persistence,
        durability,
        snapshot_every,
        decider,
        profile,
        market_reference=market_reference,
        circuit_breaker=circuit_breaker,
        standby=standby,
        snapshot_mode=snapshot_mode,
        **({"recovery_page": handover.STANDBY_RECOVERY_PAGE} if standby else {}),
    )
