"""The shard directory actor (``shard-directory``): the registry of shards.

It keeps the ``shards`` table (through the persistence actor), creates shard actors on demand
(``get_or_create``) or from config (``add``), spreads them over the cluster's nodes
(``scheduling_strategy="SPREAD"``), lists them with node, sequence number, book size and queue depth,
drains a shard (stop taking commands, flush, snapshot) and moves one to another node (drain, stop,
start from the snapshot there). On start it re-creates every ACTIVE shard of the table.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors.core.ids import DIRECTORY_ACTOR
from actors.shard_actor import create_shard_actor

log = logging.getLogger(__name__)

ACTOR_NAME = DIRECTORY_ACTOR


class ShardDirectoryService:
    """Implementation of the directory actor.

    ``persistence``: persistence actor handle; ``namespace``: Ray namespace of the shard actors;
    ``durability``/``snapshot_every``/``decider``/``profile``: passed to every shard actor.
    """

    def __init__(
        self,
        persistence: Any,
        namespace: str | None = None,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        decider: Any = None,
        profile: str | None = None,
        detached: bool = False,
        restore: bool = True,
    ) -> None:
        self.persistence = persistence
        self.namespace = namespace
        self.durability = durability
        self.snapshot_every = snapshot_every
        self.decider = decider
        self.profile = profile
        self.detached = detached
        self.handles: dict[str, Any] = {}
        self.meta: dict[str, tuple[str, str]] = {}
        if restore:
            try:
                for row in ray.get(self.persistence.list_shards.remote()):
                    self.meta[row["shard_id"]] = (row["region"], row["commodity"])
                    if row["status"] == "ACTIVE":
                        self._ensure(row["region"], row["commodity"])
            except Exception as exc:
                log.warning("shard directory: could not restore shards: %s", exc)

    def _ensure(self, region: str, commodity: str, scheduling_strategy: Any = "SPREAD") -> Any:
        from actors.core.ids import shard_id_for

        sid = shard_id_for(region, commodity)
        h = self.handles.get(sid)
        if h is None:
            h = create_shard_actor(
                region,
                commodity,
                self.persistence,
                namespace=self.namespace,
                durability=self.durability,
                snapshot_every=self.snapshot_every,
                decider=self.decider,
                profile=self.profile,
                scheduling_strategy=scheduling_strategy,
                detached=self.detached,
            )
            self.handles[sid] = h
            self.meta[sid] = (region, commodity)
        return h

    def get_or_create(self, region: str, commodity: str) -> Any:
        """Handle of the shard actor for (region, commodity), created and registered if new."""
        from actors.core.ids import shard_id_for

        sid = shard_id_for(region, commodity)
        known = sid in self.handles
        h = self._ensure(region, commodity)
        if not known:
            ray.get(self.persistence.upsert_shard.remote(sid, region, self.meta[sid][1], "ACTIVE"))
        return h

    def add(self, region: str, commodity: str) -> dict[str, Any]:
        """Create (or confirm) a shard and return its :meth:`ShardService.info`."""
        h = self.get_or_create(region, commodity)
        info: dict[str, Any] = ray.get(h.info.remote())
        ray.get(
            self.persistence.upsert_shard.remote(
                info["shard_id"], region, info["commodity"], "ACTIVE", info["node_id"]
            )
        )
        return info

    def get(self, shard_id: str) -> Any:
        """Handle of a known shard, or None."""
        if shard_id not in self.handles and shard_id in self.meta:
            region, commodity = self.meta[shard_id]
            return self._ensure(region, commodity)
        return self.handles.get(shard_id)

    def list(self) -> list[dict[str, Any]]:
        """One dict per shard (see ``ShardService.info``): ``shard_id``, ``node_id``, ``seq``,
        ``committed_seq``, ``book_size``, ``queue_depth`` (batches received and not yet answered),
        ``draining``, and ``status`` (``UP``, or ``UNREACHABLE`` with ``error``)."""
        out = []
        refs = {sid: h.info.remote() for sid, h in self.handles.items()}
        for sid, ref in refs.items():
            try:
                info = ray.get(ref, timeout=10)
                info["status"] = "UP"
            except Exception as exc:
                info = {"shard_id": sid, "status": "UNREACHABLE", "error": str(exc)[:200]}
            out.append(info)
        return sorted(out, key=lambda d: d["shard_id"])

    def drain(self, shard_id: str) -> dict[str, Any]:
        """Stop a shard taking commands, flush its commits and snapshot it; returns its info."""
        h = self.get(shard_id)
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        info: dict[str, Any] = ray.get(h.drain.remote())
        return info

    def resume(self, shard_id: str) -> dict[str, Any]:
        """Let a drained shard take commands again."""
        h = self.get(shard_id)
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        info: dict[str, Any] = ray.get(h.resume.remote())
        return info

    def move(self, shard_id: str, node_id: str | None = None) -> dict[str, Any]:
        """Move a shard: drain, stop the actor, start it again (from the snapshot) on ``node_id``
        (any other node when None, if there is one), then resume. Returns the new info."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        h = self.get(shard_id)
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        old = ray.get(h.drain.remote())
        if node_id is None:
            others = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != old["node_id"]]
            node_id = others[0] if others else old["node_id"]
        ray.kill(h, no_restart=True)
        del self.handles[shard_id]
        region, commodity = self.meta[shard_id]
        import time

        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        deadline = time.monotonic() + 30
        while True:  # the killed actor's name is released asynchronously
            try:
                h2 = self._ensure(region, commodity, scheduling_strategy=strategy)
                info: dict[str, Any] = ray.get(h2.resume.remote())
                break
            except Exception:
                self.handles.pop(shard_id, None)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        ray.get(self.persistence.upsert_shard.remote(shard_id, region, commodity, "ACTIVE", info["node_id"]))
        return info


ShardDirectory = ray.remote(max_restarts=-1, max_task_retries=0)(ShardDirectoryService)


def get_or_create_directory(
    persistence: Any,
    *,
    namespace: str | None = None,
    durability: str = "sync",
    snapshot_every: int = 100_000,
    decider: Any = None,
    profile: str | None = None,
    detached: bool = False,
) -> Any:
    """Handle of the named ``shard-directory`` actor, created if missing."""
    opts: dict[str, Any] = {"name": ACTOR_NAME, "get_if_exists": True, "num_cpus": 0}
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    return ShardDirectory.options(**opts).remote(  # type: ignore[attr-defined]
        persistence, namespace, durability, snapshot_every, decider, profile, detached
    )
