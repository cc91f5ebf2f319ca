"""The shard host actor of the shared hosting mode: several shards' books in one Ray worker process
(:mod:`actors.shard_hosting`; docs/operators.md, "Shard hosting").

Each hosted shard is its own :class:`actors.shard_service.ShardService`: its own lock (batches
matched one at a time), seq, log, snapshots, risk credit and fencing, exactly as in its own
process; the host only routes calls by shard id. The shards share the host's event loop (one CPU
core), one :class:`persistence.shard_writer.ShardWriter` whose pool grows with the shards (commits
of different shards are separate transactions on the pool's :data:`HOST_WRITER_POOL`
connections), and the process.

The directory opens a shard in a host (:meth:`ShardGroupHost.open`; recovery runs on the host's
loop, between the other shards' batches) and closes it after a move or an idle stop
(:meth:`ShardGroupHost.close`). A call for a shard the host does not hold raises
:class:`ShardNotHosted` (the gateway then asks the directory again). When Ray restarts a host (its
node died), the host comes back empty: the directory re-opens its shards (each from its snapshot
and log) when it next sees them answer :class:`ShardNotHosted` (every
:data:`actors.placement.PLACEMENT_CHECK_S` seconds, or at once on a gateway's request).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

import ray

from actors import handover
from actors.placement import named_actor_options
from actors.risk_link import DeciderSpec
from actors.shard_outcomes import ShardUnavailable
from actors.shard_service import ShardService
from persistence.shard_writer import WRITER_APP_PREFIX, ShardWriter

HOST_WRITER_POOL = 4  # connections of one host's writer, however many shards it holds
_RECOVERY_WAIT_S = 30.0  # how long an opening shard retries its recovery while PostgreSQL is down


class ShardNotHosted(ShardUnavailable):
    """The host does not hold this shard (closed, moved, or the host restarted): nothing ran; ask
    the directory for the shard's host."""


class ShardGroupHost:
    """Ray actor class hosting the shards of one group (``group``: ``commodity:<code>`` or
    ``region:<code>``). The other arguments are those of :class:`actors.shard_actor.ShardHost` and
    apply to every hosted shard."""

    def __init__(
        self,
        group: str,
        persistence: Any,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        decider: DeciderSpec = None,
        profile: str | None = None,
        recovery_page: int = 20_000,
        market_reference: str = "agmarknet",
        circuit_breaker: bool = True,
    ) -> None:
        from actors.gc_tuning import tune_gc_for_matching

        tune_gc_for_matching()
        ctx = ray.get_runtime_context()
        self.group = group
        self.node_id = ctx.get_node_id()
        self.start_kind = "restart" if ctx.was_current_actor_reconstructed else "cold"
        self.opts: dict[str, Any] = {
            "durability": durability,
            "snapshot_every": snapshot_every,
            "profile": profile,
            "recovery_page": recovery_page,
            "circuit_breaker": circuit_breaker,
        }
        self.decider = decider
        self.market_reference = market_reference
        config = ray.get(persistence.writer_config.remote())
        name = f"{WRITER_APP_PREFIX}host:{group}"
        self.writer = ShardWriter(**config, pool_size=HOST_WRITER_POOL, name=name)
        self.services: dict[str, ShardService] = {}
        self.opening: dict[str, asyncio.Task[None]] = {}
        self.recovery_s: dict[str, float] = {}

    # -- opening and closing shards ----------------------------------------------------------------
    async def open(self, shard_id: str, standby: bool = False, wait: bool = True) -> dict[str, Any] | None:
        """Hold shard ``shard_id`` (``<region>.<commodity>``) here: recover it from its snapshot and
        log (``standby``: take no commands until promoted, :mod:`actors.handover`). Idempotent.
        ``wait``: return its info once recovered; else return None as soon as the recovery started
        (calls for the shard wait for it)."""
        if shard_id not in self.services and shard_id not in self.opening:
            self.opening[shard_id] = asyncio.ensure_future(self._open(shard_id, standby))
        task = self.opening.get(shard_id)
        if not wait:
            return None
        if task is not None:
            await asyncio.shield(task)
        return await self.info(shard_id)

    async def _open(self, shard_id: str, standby: bool) -> None:
        from persistence.agmarknet_reference import market_reference as agmarknet_reference

        region, _, commodity = shard_id.rpartition(".")
        ref = agmarknet_reference(region, commodity) if self.market_reference == "agmarknet" else None
        opts = dict(self.opts)
        if standby:
            opts["recovery_page"] = handover.STANDBY_RECOVERY_PAGE
        svc = ShardService(
            region,
            commodity,
            self.writer,
            self.decider,
            node_id=self.node_id,
            market_reference=None if ref is None else (ref[0], "agmarknet", ref[1]),
            **opts,
        )
        if svc.shard_id != shard_id:
            raise ValueError(f"{shard_id!r} is not a shard id (<region>.<commodity>)")
        svc.draining = standby
        t0 = time.perf_counter()
        try:
            await svc.start(_RECOVERY_WAIT_S)  # a failed recovery is retried by the first command
            self.services[shard_id] = svc
            self.recovery_s[shard_id] = time.perf_counter() - t0
        finally:
            self.opening.pop(shard_id, None)

    async def close(self, shard_id: str) -> bool:
        """Stop holding ``shard_id``: no more commands, wait for its commits, drop its book (the log
        and the snapshots stay). False when it was not held."""
        task = self.opening.get(shard_id)
        if task is not None:
            await asyncio.shield(task)
        svc = self.services.get(shard_id)
        if svc is None:
            return False
        svc.draining = True
        async with svc._get_lock():
            await svc.flush()
        self.services.pop(shard_id, None)
        self.recovery_s.pop(shard_id, None)
        return True

    async def _svc(self, shard_id: str) -> ShardService:
        svc = self.services.get(shard_id)
        if svc is not None:
            return svc
        task = self.opening.get(shard_id)
        if task is not None:
            await asyncio.shield(task)
            svc = self.services.get(shard_id)
            if svc is not None:
                return svc
        raise ShardNotHosted(f"shard {shard_id} is not held by host {self.group} (pid {os.getpid()})")

    def hosted(self) -> list[dict[str, Any]]:
        """``[{"shard_id", "draining"}]`` of the shards held (standbys and drained ones included)."""
        return [{"shard_id": sid, "draining": s.draining} for sid, s in sorted(self.services.items())]

    def host_info(self) -> dict[str, Any]:
        """The host process: ``group``, ``node_id``, ``pid``, ``start_kind``, ``shards`` (held),
        ``opening`` (recovering) and ``writer_pool_size``."""
        return {
            "group": self.group,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "start_kind": self.start_kind,
            "shards": sorted(self.services),
            "opening": sorted(self.opening),
            "writer_pool_size": self.writer.pool_size,
        }

    # -- the calls of a shard actor, by shard id ---------------------------------------------------
    async def submit(self, shard_id: str, commands: Sequence[object]) -> list[dict[str, Any]]:
        """See :meth:`ShardService.submit`; raises :class:`ShardNotHosted` too."""
        return await (await self._svc(shard_id)).submit(commands)

    async def query(self, shard_id: str, name: str, **kw: Any) -> Any:
        """See :meth:`ShardService.query`."""
        return await (await self._svc(shard_id)).query(name, **kw)

    async def flush(self, shard_id: str) -> int:
        """See :meth:`ShardService.flush`."""
        return await (await self._svc(shard_id)).flush()

    async def snapshot_now(self, shard_id: str) -> int:
        """See :meth:`ShardService.snapshot_now`."""
        return await (await self._svc(shard_id)).snapshot_now()

    async def drain(self, shard_id: str) -> dict[str, Any]:
        """See :meth:`ShardService.drain`."""
        return await (await self._svc(shard_id)).drain()

    async def resume(self, shard_id: str) -> dict[str, Any]:
        """See :meth:`ShardService.resume`."""
        return await (await self._svc(shard_id)).resume()

    async def reload(self, shard_id: str) -> int:
        """See :meth:`ShardService.reload`."""
        return await (await self._svc(shard_id)).reload()

    async def engine_snapshot(self, shard_id: str) -> dict[str, Any]:
        """See :meth:`ShardService.engine_snapshot`."""
        return await (await self._svc(shard_id)).engine_snapshot()

    async def info(self, shard_id: str) -> dict[str, Any]:
        """:meth:`ShardService.info` plus ``host`` (the group), ``hosting`` (``shared``),
        ``start_kind`` and ``start_recovery_s`` (seconds the shard's opening took); waits while the
        shard recovers. Raises :class:`ShardNotHosted`."""
        return self._info(await self._svc(shard_id))

    def _info(self, svc: ShardService) -> dict[str, Any]:
        shard_id = svc.shard_id
        fanout = self.writer.fanout
        return {
            **svc.info(),
            "host": self.group,
            "hosting": "shared",
            "start_kind": self.start_kind,
            "start_recovery_s": round(self.recovery_s.get(shard_id, 0.0), 4),
            "events_published": fanout.published,
            "events_dropped": fanout.dropped,
        }

    async def fence(self, shard_id: str) -> dict[str, Any]:
        """See :func:`actors.handover.fence`."""
        return await handover.fence(await self._svc(shard_id))

    async def unfence(self, shard_id: str) -> None:
        """Take commands again after a fence (a failed handover)."""
        (await self._svc(shard_id)).draining = False

    async def catch_up(self, shard_id: str) -> int:
        """See :func:`actors.handover.catch_up`."""
        return await handover.catch_up(await self._svc(shard_id))

    async def promote(
        self, shard_id: str, seq: int, drained: bool = False, snapshot_seq: int = 0
    ) -> dict[str, Any]:
        """See :func:`actors.handover.promote`."""
        svc = await self._svc(shard_id)
        handover.promote(svc, seq, drained, snapshot_seq)
        return self._info(svc)


ShardGroupActor = ray.remote(max_restarts=-1, max_task_retries=0)(ShardGroupHost)


def get_or_create_group_host(
    group: str,
    persistence: Any,
    *,
    name: str,
    namespace: str | None = None,
    scheduling_strategy: Any = "SPREAD",
    detached: bool = False,
    num_cpus: float = 0,
    **shard_options: Any,
) -> Any:
    """Handle of the named host actor ``name`` of ``group`` (:func:`actors.shard_hosting.group_host_name`),
    created if missing; on a cluster with matching nodes it asks for 1 unit of their resource (a
    host counts as one shard process). ``shard_options``: :class:`ShardGroupHost` arguments."""
    from actors.shard_actor import matching_placement

    opts = named_actor_options(
        name,
        namespace,
        detached,
        num_cpus,
        scheduling_strategy=scheduling_strategy,
        **matching_placement(ray.cluster_resources()),
    )
    return ShardGroupActor.options(**opts).remote(group, persistence, **shard_options)


def group_host_on(namespace: str | None, group: str) -> str | None:
    """The node id of the live first host of ``group`` (``shard-host:<group>``), or None."""
    from actors.shard_hosting import group_host_name

    try:
        host: Any = ray.get_actor(group_host_name(group), namespace=namespace)
        info: Any = ray.get(host.host_info.remote(), timeout=30)
    except (ValueError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return None
    return str(info["node_id"])


def hosted_copies(namespace: str | None) -> dict[str, list[tuple[str, bool, Any]]]:
    """Every shard held by a live host of ``namespace``: ``{shard_id: [(host actor name, draining,
    HostedShard)]}`` (what an earlier directory left; hosts that do not answer within 30 s are
    skipped)."""
    from actors.shard_hosting import GROUP_HOST_PREFIX, HostedShard

    ns = namespace or ray.get_runtime_context().namespace
    out: dict[str, list[tuple[str, bool, Any]]] = {}
    for a in ray.util.list_named_actors(all_namespaces=True):
        name = a["name"]
        if a.get("namespace") != ns or not name.startswith(GROUP_HOST_PREFIX):
            continue
        try:
            host: Any = ray.get_actor(name, namespace=ns)
            rows: Any = ray.get(host.hosted.remote(), timeout=30)
        except (ValueError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            continue
        for row in rows:
            sid = row["shard_id"]
            out.setdefault(sid, []).append((name, bool(row["draining"]), HostedShard(host, sid)))
    return out
