"""The shard directory actor (``shard-directory``): the registry of shards and their status.

It owns the ``shards`` table's status column (through the persistence actor): ``ACTIVE`` (the shard
takes orders; listed ``UP`` while its actor runs), ``IDLE`` (stopped after
``ShardPolicy.idle_timeout_s`` seconds without commands; the next command or query starts it again
from PostgreSQL) and ``DRAINED`` (an operator drained it: it takes no commands until resumed).

- ``get_or_create``: an order's shard; a new one only as :class:`actors.shard_policy.ShardPolicy`
  allows (``NoMarket``) and while the nodes have room (``CapacityReached``).
- ``add`` (operators), ``drain``, ``resume``, ``move``, ``list`` (every shard of the table, running
  or not), ``readiness`` (have the ACTIVE shards recovered?), ``flush_all`` (shutdown: flush and
  snapshot every running shard, statuses kept), ``reap_idle`` (stop idle shards; a background thread
  of the actor calls it every ``idle_check_s`` seconds).

On start it restores every shard of the table and starts the ACTIVE ones (not IDLE or DRAINED).
Shards spread over the cluster's nodes (``scheduling_strategy="SPREAD"``).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from typing import Any

import ray

from actors.core.ids import DIRECTORY_ACTOR, shard_id_for
from actors.handover import MoveMixin
from actors.placement import head_placement, host_name, matching_nodes, named_actor_options
from actors.rebalance import LoadWatch
from actors.risk_link import DeciderSpec
from actors.shard_actor import create_shard_actor
from actors.shard_group import ShardNotHosted
from actors.shard_hosting import HostedShard, HostingMixin, HostingPolicy, end_host
from actors.shard_policy import ACTIVE, DRAINED, IDLE, ShardPolicy

log = logging.getLogger(__name__)

ACTOR_NAME = DIRECTORY_ACTOR
_INFO_WAIT_S = 5.0  # how long a listing waits for a shard's info
_REAP_WAIT_S = 1.0  # how long an idle check waits (a recovering shard must not hold the directory)
_START_WAIT_S = 30.0  # a stopped actor's name is released asynchronously: retry a restart this long


class ShardDirectoryService(MoveMixin, LoadWatch, HostingMixin):
    """Implementation of the directory actor (live moves: :class:`actors.handover.MoveMixin`; where
    shards run and their load: :class:`actors.rebalance.LoadWatch`; shards in shared host processes:
    :class:`actors.shard_hosting.HostingMixin`).

    ``persistence``: persistence actor handle; ``namespace``: Ray namespace of the shard actors;
    ``durability``/``snapshot_every``/``decider``/``profile``: passed to every shard actor;
    ``policy``: creation, capacity and idle rules (default :class:`ShardPolicy`);
    ``market_reference``: where shards take their reference price (``agmarknet`` | ``none``);
    ``circuit_breaker``: False = shards make no automatic breaker halts; ``watch``: track where
    shards run (:class:`actors.rebalance.LoadWatch`); ``rebalance_every_s``: automatic rebalancing
    period (0 = off, the default: operators run ``tradedesk shards rebalance``); ``hosting``: which
    shards share a host process (:class:`actors.shard_hosting.HostingPolicy`; default: none).
    """

    def __init__(
        self,
        persistence: Any,
        namespace: str | None = None,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        decider: DeciderSpec = None,
        profile: str | None = None,
        detached: bool = False,
        restore: bool = True,
        policy: ShardPolicy | None = None,
        market_reference: str = "agmarknet",
        circuit_breaker: bool = True,
        watch: bool = True,
        rebalance_every_s: float = 0.0,
        hosting: HostingPolicy | None = None,
    ) -> None:
        self.persistence = persistence
        self.hosting = hosting or HostingPolicy()
        self.rebalance_every_s = rebalance_every_s
        self._next_rebalance = time.monotonic() + rebalance_every_s
        self.market_reference = market_reference
        self.circuit_breaker = circuit_breaker
        self.namespace = namespace
        self.durability = durability
        self.snapshot_every = snapshot_every
        self.decider = decider
        self.profile = profile
        self.detached = detached
        self.policy = policy or ShardPolicy()
        self.handles: dict[str, Any] = {}  # running shard actors
        self.meta: dict[str, tuple[str, str]] = {}  # every known shard: (region, commodity)
        self.status: dict[str, str] = {}  # ACTIVE | IDLE | DRAINED, as in the table
        self.activity: dict[str, tuple[int, float]] = {}  # (commands seen, monotonic time it changed)
        self.stopped: set[str] = set()  # shards whose actor this directory stopped
        self.gens: dict[str, int] = {}  # host generation of each shard (actors/placement.py)
        self.pending: dict[str, tuple[int, Any, str]] = {}  # moves begun: (gen, standby, node)
        self.nodes: dict[str, str] = {}  # node id of each running shard, as last recorded
        if restore:
            try:
                for row in ray.get(self.persistence.list_shards.remote()):
                    sid = row["shard_id"]
                    self.meta[sid] = (row["region"], row["commodity"])
                    self.status[sid] = row["status"]
                for sid, st in self.status.items():
                    if st == ACTIVE:
                        self._start(sid, check_capacity=False)
            except Exception as exc:
                log.warning("shard directory: could not restore shards: %s", exc)
        if self.policy.idle_timeout_s > 0:
            threading.Thread(target=self._idle_loop, name="shard-idle", daemon=True).start()
        if watch:
            threading.Thread(target=self._watch_loop, name="shard-watch", daemon=True).start()

    # -- starting and stopping actors ------------------------------------------------------------
    def _nodes(self) -> int:
        """Alive nodes that may host shards (matching nodes when the cluster has them)."""
        return len(matching_nodes())

    def _new_host(self, sid: str, name: str, scheduling_strategy: Any, standby: bool = True) -> Any:
        """Create a host actor ``name`` of known shard ``sid`` (a live move's standby by default);
        a shard of a host group is opened in the group's host instead (on the strategy's node when
        it names one) and its :class:`HostedShard` handle returned."""
        region, commodity = self.meta[sid]
        group = self.hosting.group(region, commodity)
        if group is not None:
            return self._open_hosted(sid, group, scheduling_strategy, standby)
        return create_shard_actor(
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
            market_reference=self.market_reference,
            circuit_breaker=self.circuit_breaker,
            name=name,
            standby=standby,
        )

    def _start(self, sid: str, *, check_capacity: bool = True, scheduling_strategy: Any = "SPREAD") -> Any:
        """Start (or get) the actor of known shard ``sid``; a DRAINED shard starts drained."""
        h = self.handles.get(sid)
        if h is not None:
            return h
        if sid not in self.stopped:
            h = self._adopt(sid)
            if h is not None:
                self.handles[sid] = h
                self.activity[sid] = (-1, time.monotonic())
                return h
        if check_capacity:
            self.policy.check_capacity(self._processes(), self._nodes())
        deadline = time.monotonic() + _START_WAIT_S
        while True:
            name = host_name(sid, self.gens.get(sid, 0))
            h = self._new_host(sid, name, scheduling_strategy, standby=False)
            if sid not in self.stopped and self.status.get(sid) != DRAINED:
                break  # a fresh name: no need to wait for the actor's recovery here
            try:  # the stopped actor's name may still point at the dead actor: check, retry
                if self.status.get(sid) == DRAINED:
                    ray.get(h.drain.remote(), timeout=_START_WAIT_S)
                else:
                    ray.get(h.info.remote(), timeout=_START_WAIT_S)
                break
            except ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.stopped.discard(sid)
        self.handles[sid] = h
        self.activity[sid] = (-1, time.monotonic())
        return h

    def _stop(self, sid: str, status: str) -> None:
        """Drain the running shard (flush, snapshot, no more commands), record ``status``, end it.
        Commands that reach it afterwards run nowhere (``ShardDraining`` or a dead actor), so the
        gateway may send them again to the next actor."""
        h = self.handles[sid]
        ray.get(h.drain.remote(), timeout=60)
        self._set_status(sid, status)
        del self.handles[sid]
        end_host(h)
        self.stopped.add(sid)
        self.activity.pop(sid, None)

    def _set_status(self, sid: str, status: str, node_id: str | None = None) -> None:
        """Record a shard's status (and node) in the ``shards`` table through the persistence actor;
        while that actor restarts (``max_restarts=-1``) the idempotent upsert is retried for up to
        30 s (tenacity, exponential back-off to 1 s)."""
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        region, commodity = self.meta[sid]
        for attempt in Retrying(
            retry=retry_if_exception_type(ray.exceptions.ActorUnavailableError),
            stop=stop_after_delay(30),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                ray.get(self.persistence.upsert_shard.remote(sid, region, commodity, status, node_id))
        self.status[sid] = status

    def _touch(self, sid: str) -> None:
        seen = self.activity.get(sid, (-1, 0.0))[0]
        self.activity[sid] = (seen, time.monotonic())

    # -- orders and operators ---------------------------------------------------------------------
    def get_or_create(self, region: str, commodity: str, by_operator: bool = False) -> Any:
        """Handle of the (region, commodity) shard for an order: started if IDLE, created if new and
        the creation policy allows it (``by_operator``: an operator's own code, the policy does not
        ask). Raises ``NoMarket`` or ``CapacityReached`` (actors.shard_policy)."""
        sid = shard_id_for(region, commodity)
        region = sid.rpartition(".")[0]
        if sid not in self.meta:
            if not by_operator:
                self.policy.check_new(region, commodity)
            return self._create(sid, region, commodity)
        return self.get(sid)

    def _create(self, sid: str, region: str, commodity: str) -> Any:
        self.policy.check_capacity(self._processes(), self._nodes())
        self.meta[sid] = (region, sid.rpartition(".")[2])
        self.status[sid] = ACTIVE
        try:
            h = self._start(sid, check_capacity=False)
            self._set_status(sid, ACTIVE)
        except Exception:
            self.meta.pop(sid, None)
            self.status.pop(sid, None)
            raise
        return h

    def add(self, region: str, commodity: str) -> dict[str, Any]:
        """Operator add: create (or start) a shard whatever the creation policy, and return its
        :meth:`ShardService.info`. Raises ``ValueError`` for a DRAINED shard (resume it instead) and
        ``CapacityReached``."""
        sid = shard_id_for(region, commodity)
        if self.status.get(sid) == DRAINED:
            raise ValueError(f"shard {sid} is drained: resume it (POST /v1/admin/shards/{sid}/resume)")
        h = self.get(sid) if sid in self.meta else self._create(sid, sid.rpartition(".")[0], commodity)
        info: dict[str, Any] = ray.get(h.info.remote())
        self._set_status(sid, ACTIVE, info["node_id"])
        return {**info, "status": "UP"}

    def get(self, shard_id: str) -> Any:
        """Handle of a known shard (an IDLE one is started again and becomes ACTIVE), or None."""
        if shard_id not in self.meta:
            return None
        h = self._start(shard_id)
        if self.status.get(shard_id) == IDLE:
            self._set_status(shard_id, ACTIVE)
        self._touch(shard_id)
        if isinstance(h, HostedShard):  # its host may have restarted empty: open it again
            h.open.remote(False, False)
        return h

    def drain(self, shard_id: str) -> dict[str, Any]:
        """Operator drain: stop the shard taking commands, flush its commits, snapshot it; the shard
        stays DRAINED (also across restarts) until :meth:`resume`. Returns its info."""
        h = self.get(shard_id)
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        info: dict[str, Any] = ray.get(h.drain.remote())
        self._set_status(shard_id, DRAINED)
        return {**info, "status": DRAINED}

    def resume(self, shard_id: str) -> dict[str, Any]:
        """Let a drained shard take commands again (started first if it is not running)."""
        h = self.get(shard_id)
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        info: dict[str, Any] = ray.get(h.resume.remote())
        self._set_status(shard_id, ACTIVE, info["node_id"])
        return {**info, "status": "UP"}

    def flush_all(self) -> list[dict[str, Any]]:
        """Shutdown: flush every running shard's pending commits and snapshot it, keeping each one's
        table status, so ACTIVE shards start again with the next runtime. A local runtime's shards
        are drained too (the runtime ends); a detached runtime's keep serving the next gateway.
        Returns their infos."""
        out: list[dict[str, Any]] = []
        for sid, h in sorted(self.handles.items()):
            try:
                if self.detached:
                    ray.get(h.snapshot_now.remote(), timeout=60)
                    out.append(ray.get(h.info.remote(), timeout=60))
                else:
                    out.append(ray.get(h.drain.remote(), timeout=60))
            except Exception as exc:
                log.warning("shard directory: flush of %s failed: %s", sid, exc)
            finally:
                self._set_status(sid, self.status.get(sid, ACTIVE))
        return out

    # -- listing, readiness, idle ------------------------------------------------------------------
    def _infos(self, wait_s: float) -> dict[str, dict[str, Any] | Exception | None]:
        """Info of every running shard: a dict, the error it raised, or None (no answer yet)."""
        refs = {sid: h.info.remote() for sid, h in self.handles.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=wait_s) if refs else ([], [])
        done = set(ready)
        out: dict[str, dict[str, Any] | Exception | None] = {}
        for sid, ref in refs.items():
            if ref not in done:
                out[sid] = None
                continue
            try:
                out[sid] = ray.get(ref)
            except Exception as exc:
                out[sid] = exc
                if isinstance(exc, ShardNotHosted) and sid not in self.pending:
                    self.handles[sid].open.remote(False, False)  # its host restarted empty
                    out[sid] = None  # RECOVERING
        return out

    def list(self) -> list[dict[str, Any]]:
        """One dict per shard of the table. Running shards: :meth:`ShardService.info` (``node_id``,
        ``seq``, ``committed_seq``, ``book_size``, ``queue_depth``, ``draining``...). Every row has
        ``shard_id``, ``region``, ``commodity``, ``running`` and ``status``: ``UP`` (ACTIVE and
        running), ``IDLE`` (stopped, starts on demand), ``DRAINED``, ``RECOVERING`` (started, not
        answering yet) or ``UNREACHABLE`` (with ``error``)."""
        infos = self._infos(_INFO_WAIT_S)
        out = []
        for sid, (region, commodity) in self.meta.items():
            status = self.status.get(sid, ACTIVE)
            row: dict[str, Any] = {"shard_id": sid, "region": region, "commodity": commodity}
            got = infos.get(sid, None)
            if isinstance(got, dict):
                row.update(got)
            row["running"] = sid in self.handles
            if status in (IDLE, DRAINED):
                row["status"] = status
            elif not row["running"]:
                row["status"] = IDLE
            elif isinstance(got, Exception):
                row.update(status="UNREACHABLE", error=str(got)[:200])
            else:
                row["status"] = "UP" if got is not None else "RECOVERING"
            out.append(row)
        return sorted(out, key=lambda d: d["shard_id"])

    def readiness(self, wait_s: float = 0.25) -> dict[str, Any]:
        """``{"ready": bool, "shards": {shard_id: "ready" | "recovering" | "down"}}`` over the ACTIVE
        shards (IDLE and DRAINED ones take no orders until started or resumed). Ready = every ACTIVE
        shard is running, answered within ``wait_s`` seconds and has recovered its state."""
        infos = self._infos(wait_s)
        shards: dict[str, str] = {}
        for sid, st in self.status.items():
            if st != ACTIVE:
                continue
            got = infos.get(sid)
            if isinstance(got, dict):
                recovered = got.get("seq") is not None and not got.get("dirty")
                shards[sid] = "ready" if recovered else "recovering"
            elif isinstance(got, Exception):
                shards[sid] = "down"
            else:
                shards[sid] = "recovering"
        return {"ready": all(v == "ready" for v in shards.values()), "shards": dict(sorted(shards.items()))}

    def reap_idle(self) -> builtins.list[str]:
        """Stop every running shard that took no command for ``policy.idle_timeout_s`` seconds (an
        ACTIVE one becomes IDLE, a DRAINED one stays DRAINED); return their ids."""
        now = time.monotonic()
        stopped: builtins.list[str] = []
        for sid, info in self._infos(_REAP_WAIT_S).items():
            if not isinstance(info, dict):
                continue
            seen, since = self.activity.get(sid, (-1, now))
            commands = int(info.get("commands") or 0)
            if info.get("queue_depth") or (commands != seen and (seen != -1 or commands > 0)):
                self.activity[sid] = (commands, now)  # commands arrived since the last look
                continue
            self.activity[sid] = (commands, since)
            if self.policy.is_idle(now - since):
                try:
                    self._stop(sid, DRAINED if self.status.get(sid) == DRAINED else IDLE)
                    stopped.append(sid)
                except Exception as exc:
                    log.warning("shard directory: idle stop of %s failed: %s", sid, exc)
        if stopped:
            log.info("shard directory: stopped idle shards %s", stopped)
        return stopped

    def _idle_loop(self) -> None:
        me = None
        while True:
            time.sleep(self.policy.idle_check_s)
            try:
                if me is None:
                    me = ray.get_runtime_context().current_actor
                ray.get(me.reap_idle.remote())
            except Exception as exc:  # not running as an actor (unit use) or shutting down
                log.debug("shard directory: idle check skipped: %s", exc)
                if me is None:
                    return


ShardDirectory = ray.remote(max_restarts=-1, max_task_retries=0)(ShardDirectoryService)


def get_or_create_directory(
    persistence: Any,
    *,
    namespace: str | None = None,
    durability: str = "sync",
    snapshot_every: int = 100_000,
    decider: DeciderSpec = None,
    profile: str | None = None,
    detached: bool = False,
    policy: ShardPolicy | None = None,
    market_reference: str = "agmarknet",
    circuit_breaker: bool = True,
    rebalance_every_s: float = 0.0,
    hosting: HostingPolicy | None = None,
) -> Any:
    """Handle of the named ``shard-directory`` actor (on the head node of a cluster), created if
    missing."""
    opts = named_actor_options(ACTOR_NAME, namespace, detached, **head_placement())
    return ShardDirectory.options(**opts).remote(
        persistence,
        namespace,
        durability,
        snapshot_every,
        decider,
        profile,
        detached,
        True,
        policy,
        market_reference,
        circuit_breaker,
        True,
        rebalance_every_s,
        hosting,
    )
