"""Start (or attach to) the Ray runtime of tradedesk: migrations, persistence actor, shard directory,
settlement host, projector, snapshotter.

``tradedesk serve`` calls :func:`start_runtime` once Ray is initialised; the gateway then asks the
directory for shard handles. Everything is named in ``settings.ray_namespace``, so a second process
calling :func:`start_runtime` attaches to the same actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from actors.risk_link import DeciderSpec
from actors.settings import Settings
from persistence.actor import get_or_create_persistence
from persistence.migrate import apply_migrations


@dataclass
class Runtime:
    """Handles of the runtime's actors and where they live."""

    dsn: str
    namespace: str
    persistence: Any
    directory: Any
    redis_url: str | None = None
    settlement: Any = None
    projector: Any = None
    snapshotter: Any = None

    def shard(self, region: str, commodity: str) -> Any:
        """Handle of the shard actor for (region, commodity), created if new: an operator's call, so
        the creation policy does not apply (the shard cap does)."""
        return ray.get(self.directory.get_or_create.remote(region, commodity, True))

    def list_shards(self) -> list[dict[str, Any]]:
        """The directory's listing of every known shard (status, node, seq, book size, queue depth)."""
        result: list[dict[str, Any]] = ray.get(self.directory.list.remote())
        return result

    def flush_all(self) -> list[dict[str, Any]]:
        """Flush and snapshot every running shard, keeping their statuses, then let the projector
        catch up with the committed logs (shutdown: the read models are complete when it returns,
        unless the projector needs more than 120 s)."""
        result: list[dict[str, Any]] = ray.get(self.directory.flush_all.remote(), timeout=300)
        if self.projector is not None:
            ray.get(self.projector.catch_up.remote(120.0), timeout=150)
        return result


def start_runtime(
    settings: Settings,
    dsn: str,
    redis_url: str | None = None,
    decider: DeciderSpec = None,
    *,
    detached: bool = False,
    profile: str | None = None,
) -> Runtime:
    """Apply migrations to ``dsn``, then get or create the ``persistence``, ``shard-directory``,
    ``settlement``, ``projector`` and ``snapshotter`` actors in ``settings.ray_namespace``; the
    directory follows the settings' shard policy (``shard_creation``, ``max_shards_per_node``,
    ``shard_idle_timeout_s``); the shards take no periodic snapshots themselves (their default
    ``snapshot_mode="background"``): the snapshotter builds them from the log (``snapshot_every``,
    ``snapshot_interval_s``, ``snapshot_check_s``).
    ``decider``: a risk decider or picklable factory of one handed to every shard (None = pass-all).
    Requires ``ray.init`` to have been called."""
    from actors.directory import get_or_create_directory
    from actors.placement import head_placement
    from actors.projector_actor import get_or_create_projector
    from actors.settlement_actor import get_or_create_settlement
    from actors.shard_hosting import HostingPolicy
    from actors.shard_policy import ShardPolicy
    from actors.snapshotter_actor import get_or_create_snapshotter

    apply_migrations(dsn)
    ns = settings.ray_namespace
    on_head = head_placement()  # the head node of a cluster (cluster.yaml), else anywhere
    persistence = get_or_create_persistence(
        dsn,
        redis_url,
        namespace=ns,
        detached=detached,
        placement=on_head,
        commit_thread=settings.commit_thread,
    )
    directory = get_or_create_directory(
        persistence,
        namespace=ns,
        durability=settings.durability,
        snapshot_every=settings.snapshot_every,
        decider=decider,
        profile=profile,
        detached=detached,
        policy=ShardPolicy.from_settings(settings),
        market_reference=settings.market_reference,
        circuit_breaker=settings.circuit_breaker,
        rebalance_every_s=settings.shard_rebalance_interval_s,
        hosting=HostingPolicy(dict(settings.shard_hosting)),
    )
    settlement = get_or_create_settlement(
        dsn,
        redis_url,
        namespace=ns,
        detached=detached,
        key_prefix=settings.key_prefix,
        grace_days=settings.settlement_grace_days,
        tolerance_bps=settings.settlement_tolerance_bps,
        party_terms=dict(settings.settlement_party_terms_days),
        tail_s=settings.settlement_tail_s,
        sweep_s=settings.settlement_sweep_s,
        placement=on_head,
    )
    projector = get_or_create_projector(dsn, namespace=ns, detached=detached, placement=on_head)
    snapshotter = get_or_create_snapshotter(
        dsn,
        namespace=ns,
        detached=detached,
        placement=on_head,
        every=settings.snapshot_every,
        interval_s=settings.snapshot_interval_s,
        check_s=settings.snapshot_check_s,
        profile=profile,
    )
    ray.get(persistence.ping.remote())
    ray.get(settlement.ping.remote())
    ray.get(projector.ping.remote())
    ray.get(snapshotter.ping.remote())
    return Runtime(
        dsn=dsn,
        namespace=ns,
        persistence=persistence,
        directory=directory,
        redis_url=redis_url,
        settlement=settlement,
        projector=projector,
        snapshotter=snapshotter,
    )
