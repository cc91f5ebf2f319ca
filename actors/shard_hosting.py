"""How shards are hosted: one Ray worker process per shard, or several shards' books in one *shard
host* process (docs/operators.md, "Shard hosting").

A shard's own process costs about 100 MB of private memory idle (Python, Ray's worker runtime,
asyncpg, the risk client: measured by ``tradedesk bench failover``), which caps a 24 GB node at a
few hundred shards; a desk of 30 states x 20 commodities has 600. In the *shared* mode, one host
actor (:class:`actors.shard_group.ShardGroupHost`) holds every shard of a group (one commodity, or one
region) on one event loop: each shard is still its own :class:`actors.shard_service.ShardService`,
matched strictly one batch at a time, with its own seq, log, snapshots and fencing. Shards of one
host share its CPU core, its writer's connection pool and its process; a crash of the host
restarts all of them (each from its own snapshot and log).

- :class:`HostingPolicy` (pure): which mode a (region, commodity) shard uses, from the
  ``shard_hosting`` setting: ``{"*": "process", "cotton": "commodity", "IN-MH": "region"}``; the
  commodity's entry wins over the region's, which wins over ``"*"``.
- :class:`HostedShard`: a picklable handle of one shard inside a host actor that answers the same
  calls as a shard actor's handle (``h.submit.remote(commands)`` ...), so the directory, the gateway
  and the move protocol treat both modes alike.
- :func:`end_host`: end one host of a shard (kill its actor, or close the shard in its host).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROCESS = "process"  # one Ray worker process per shard (the default)
BY_COMMODITY = "commodity"  # one host process per commodity (every region of it)
BY_REGION = "region"  # one host process per region (every commodity of it)
MODES = (PROCESS, BY_COMMODITY, BY_REGION)
GROUP_HOST_PREFIX = "shard-host:"  # Ray actor names of shard hosts: shard-host:<group>[@<node>]
_NODE_SEP = "@"
_NODE_CHARS = 12  # node id characters in a node-pinned host's name
_OPEN_WAIT_S = 30.0  # how long the directory waits for a host to start a shard's opening


@dataclass(frozen=True)
class HostingPolicy:
    """Which shards share a host process. ``rules``: ``{key: mode}`` where key is a commodity code,
    a region code or ``"*"`` (every other shard) and mode is ``process``, ``commodity`` or
    ``region``. Raises ValueError for an unknown mode."""

    rules: Mapping[str, str] = field(default_factory=lambda: {"*": PROCESS})

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.rules.items() if v not in MODES}
        if bad:
            raise ValueError(f"shard_hosting: unknown mode(s) {bad}; use one of {', '.join(MODES)}")

    def mode(self, region: str, commodity: str) -> str:
        """The hosting mode of the (region, commodity) shard."""
        r = self.rules
        return r.get(commodity) or r.get(region) or r.get("*") or PROCESS

    def group(self, region: str, commodity: str) -> str | None:
        """The host group of a shared-mode shard (``commodity:cotton``, ``region:IN-MH``), or None
        for a shard in its own process."""
        mode = self.mode(region, commodity)
        if mode == BY_COMMODITY:
            return f"commodity:{commodity}"
        if mode == BY_REGION:
            return f"region:{region}"
        return None


def group_host_name(group: str, node_id: str | None = None) -> str:
    """Ray actor name of the host of ``group``: ``shard-host:commodity:cotton``; pinned to a node
    (the target of a move): ``shard-host:commodity:cotton@<first 12 characters of the node id>``."""
    base = f"{GROUP_HOST_PREFIX}{group}"
    return base if node_id is None else f"{base}{_NODE_SEP}{node_id[:_NODE_CHARS]}"


class _HostedMethod:
    __slots__ = ("_method", "_shard_id")

    def __init__(self, method: Any, shard_id: str) -> None:
        self._method = method
        self._shard_id = shard_id

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._method.remote(self._shard_id, *args, **kwargs)


class HostedShard:
    """Handle of shard ``shard_id`` inside the host actor ``host``: ``h.<method>.remote(*args)``
    calls ``host.<method>.remote(shard_id, *args)``. Two handles are the same host of the same shard
    when their ``_actor_id`` (host actor id, shard id) are equal."""

    __slots__ = ("host", "shard_id")

    def __init__(self, host: Any, shard_id: str) -> None:
        self.host = host
        self.shard_id = shard_id

    def __reduce__(self) -> tuple[Any, tuple[Any, str]]:
        return (HostedShard, (self.host, self.shard_id))

    def __getattr__(self, name: str) -> _HostedMethod:
        if name.startswith("_") or name in ("host", "shard_id"):
            raise AttributeError(name)
        return _HostedMethod(getattr(self.host, name), self.shard_id)

    @property
    def _actor_id(self) -> tuple[Any, str]:
        return (self.host._actor_id, self.shard_id)

    def __repr__(self) -> str:
        return f"HostedShard({self.shard_id!r} in {self.host!r})"


def end_host(handle: Any, timeout_s: float = 60.0) -> None:
    """End one host of a shard: a shard actor is killed (no restart); a shard inside a host actor is
    closed there (its commits flushed first; the host and its other shards serve on). Errors of a
    host that is already gone are ignored."""
    import ray

    if isinstance(handle, HostedShard):
        with contextlib.suppress(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            ray.get(handle.close.remote(), timeout=timeout_s)
        return
    ray.kill(handle, no_restart=True)


class HostingMixin:
    """The shared hosting mode in :class:`actors.directory.ShardDirectoryService` (it provides
    ``handles``, ``meta``, ``hosting``, ``persistence`` and the shard options)."""

    handles: dict[str, Any]
    meta: dict[str, tuple[str, str]]
    hosting: HostingPolicy
    persistence: Any
    namespace: str | None
    detached: bool
    durability: str
    snapshot_every: int
    decider: Any
    profile: str | None
    market_reference: str
    circuit_breaker: bool

    def _processes(self) -> int:
        """Running shard processes: shards in their own process plus shard hosts."""
        hosts = {h.host._actor_id for h in self.handles.values() if isinstance(h, HostedShard)}
        return sum(not isinstance(h, HostedShard) for h in self.handles.values()) + len(hosts)

    def _copies_of(self, sid: str) -> list[tuple[str, bool, HostedShard]]:
        """The copies of ``sid`` that shared hosts held when this directory first looked
        (:func:`actors.shard_group.hosted_copies`, read once): ``[(host name, draining, handle)]``."""
        idx = self.__dict__.get("_hosted_copies")
        if idx is None:
            from actors.shard_group import hosted_copies

            idx = self.__dict__["_hosted_copies"] = hosted_copies(self.namespace)
        got: list[tuple[str, bool, HostedShard]] = idx.pop(sid, [])
        return got

    def _adopt_copy(self, sid: str, group: str | None) -> HostedShard | None:
        """Keep the copy of ``sid`` a host of ``group`` holds (a serving one before a standby) and
        close every other copy: those of an interrupted move, and all of them when the shard's
        hosting changed (``group`` None: it now has its own process)."""
        base = group_host_name(group) if group is not None else None
        mine = []
        for name, draining, h in self._copies_of(sid):
            if base is not None and (name == base or name.startswith(base + _NODE_SEP)):
                mine.append((draining, h))
            else:
                end_host(h)
        mine.sort(key=lambda x: x[0])  # a serving one first
        for _draining, other in mine[1:]:
            end_host(other)
        return mine[0][1] if mine else None

    def _group(self, sid: str) -> str | None:
        """The host group of known shard ``sid`` (None: its own process)."""
        return self.hosting.group(*self.meta[sid])

    def _open_hosted(self, sid: str, group: str, scheduling_strategy: Any, standby: bool) -> HostedShard:
        import ray

        from actors.shard_group import get_or_create_group_host, group_host_on

        node = getattr(scheduling_strategy, "node_id", None)
        name = group_host_name(group, node)
        if node is not None and group_host_on(self.namespace, group) == node:
            name = group_host_name(group)  # the group's first host already runs there
        host = get_or_create_group_host(
            group,
            self.persistence,
            name=name,
            namespace=self.namespace,
            scheduling_strategy=scheduling_strategy,
            detached=self.detached,
            durability=self.durability,
            snapshot_every=self.snapshot_every,
            decider=self.decider,
            profile=self.profile,
            market_reference=self.market_reference,
            circuit_breaker=self.circuit_breaker,
        )
        ray.get(host.open.remote(sid, standby, False), timeout=_OPEN_WAIT_S)  # recovery started
        return HostedShard(host, sid)
