"""Live shard move with a fenced handover (docs/operators.md, "Move a shard").

1. **Prepare** (:meth:`MoveMixin.begin_move`, directory): the next host of the shard (generation
   ``gen + 1``, :func:`actors.placement.host_name`) starts on the target node in *standby*: it
   recovers from the latest snapshot and the later events but takes no commands. The old host
   serves all along.
2. **Catch up** (:func:`move_shard`, any process): the standby applies the events the old host
   commits meanwhile (:func:`catch_up`), until it is at most ``lag_events`` behind.
3. **Handover** (:meth:`MoveMixin.finish_move`, directory): the old host is fenced (:func:`fence`:
   no more commands, every commit flushed; it stopped at seq N), the standby applies the last events
   up to N and is promoted (it resumes at N + 1), the directory swaps the handles and ends the old
   host. Commands that reach the old host after its fence were not run (``ShardDraining``): the
   gateway asks the directory for the shard's host again, and that call waits until the handover is
   over, so the client sees a pause, not an error. A stale writer can never commit a conflicting
   seq: ``(shard_id, seq)`` is the events table's primary key.

The pause is step 3 only (about one round trip per call plus the last few events); the recovery
of a long history happens in step 1 while the shard serves.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import ray

from actors.placement import host_name, matching_nodes, shard_hosts
from actors.shard_hosting import end_host
from actors.shard_policy import ACTIVE, DRAINED
from actors.shard_recovery import apply_rows

if TYPE_CHECKING:
    from actors.shard_service import ShardService

MOVE_LAG_EVENTS = 200  # the standby is at most this many events behind when the handover starts
MOVE_CATCH_UP_ROUNDS = 50  # catch-up rounds before the handover starts anyway
MOVE_START_TIMEOUT_S = 600.0  # how long the standby may take to start and recover
# events per read of a standby's recovery: small pages, so the one persistence actor interleaves the
# serving shards' commits between them (20 000-event pages held commits for seconds under load)
STANDBY_RECOVERY_PAGE = 2_000


class MoveRefused(ValueError):
    """A move that cannot start (unknown node, same node, a move already running)."""


# -- the host side (called by the shard actor's methods) -----------------------------------------
async def catch_up(svc: ShardService) -> int:
    """Apply the events committed after ``svc``'s committed seq (a standby following the serving
    host); return the new committed seq. Raises RuntimeError on a gap in the log."""
    async with svc._get_lock():
        if svc._dirty or svc.engine is None:
            await svc._ready()
        engine = svc.engine
        assert engine is not None
        seq = svc.committed_seq
        while True:
            rows = await svc.store.read_events(svc.shard_id, seq, svc.recovery_page)
            seq = apply_rows(engine, seq, rows, svc.shard_id)
            cp = svc._checkpoint
            if cp is not None:
                cp.rows.extend(rows)
                if len(cp.rows) > svc.memory_tail:
                    svc._checkpoint = None
            if svc.shadow is not None and rows:
                svc.shadow.advance(list(rows))
            if len(rows) < svc.recovery_page:
                break
        svc.committed_seq = seq
        return seq


async def fence(svc: ShardService) -> dict[str, Any]:
    """Stop taking commands (later ones raise ``ShardDraining``), wait for the batch being matched
    and every commit; return the info (``committed_seq`` = N, the last seq). The book stays
    readable."""
    svc.draining = True
    async with svc._get_lock():
        await svc.flush()
        return svc.info()


def promote(svc: ShardService, seq: int, drained: bool = False, snapshot_seq: int = 0) -> dict[str, Any]:
    """Make a caught-up standby serve (``drained``: keep it refusing commands, for a DRAINED
    shard); ``snapshot_seq``: the old host's last snapshot, so the new one does not take the same
    snapshot again in its first batch. Raises RuntimeError when it is not exactly at ``seq``."""
    if svc.committed_seq != seq or svc._dirty:
        raise RuntimeError(f"shard {svc.shard_id}: standby at {svc.committed_seq}, the handover is at {seq}")
    svc.last_snapshot_seq = max(svc.last_snapshot_seq, snapshot_seq)
    svc.draining = drained
    return svc.info()


# -- the directory side --------------------------------------------------------------------------
class MoveMixin:
    """Hosts and moves of :class:`actors.directory.ShardDirectoryService` (it provides ``handles``,
    ``meta``, ``status``, ``stopped``, ``get``, ``_start``, ``_set_status``, ``_new_host``): adopting
    the hosts an earlier directory left, the cold move (drain, stop, start elsewhere) and the steps of
    the live move."""

    namespace: str | None

    handles: dict[str, Any]
    status: dict[str, str]
    gens: dict[str, int]
    pending: dict[str, tuple[int, Any, str]]

    def _adopt(self, sid: str) -> Any:
        """The newest live host of ``sid`` left by an earlier directory (older ones end), or None.
        Copies in the other hosting mode (the ``shard_hosting`` setting changed) end too."""
        group = self._group(sid)  # type: ignore[attr-defined]
        hosted = self._adopt_copy(sid, group)  # type: ignore[attr-defined]
        if group is not None:  # a process of its own under an earlier policy ends
            for _g, old in shard_hosts(self.namespace, sid):
                end_host(old)
            if hosted is not None and self.status.get(sid) != DRAINED:
                ray.get(
                    hosted.unfence.remote(), timeout=MOVE_START_TIMEOUT_S
                )  # an interrupted move's standby
            return hosted
        hosts = shard_hosts(self.namespace, sid)
        if not hosts:
            return None
        gen, h = hosts[-1]
        for _g, old in hosts[:-1]:
            end_host(old)
        if gen > 0 and self.status.get(sid) != DRAINED:
            ray.get(h.unfence.remote(), timeout=MOVE_START_TIMEOUT_S)  # a standby of an interrupted move
        self.gens[sid] = gen
        return h

    def move(self, shard_id: str, node_id: str | None = None) -> dict[str, Any]:
        """Cold move: drain, stop the actor, start it again (from the snapshot) on ``node_id`` (any
        other node when None, if there is one), then resume. Returns the new info. The live move
        with a short pause is :func:`actors.handover.move_shard`."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        h = self.get(shard_id)  # type: ignore[attr-defined]
        if h is None:
            raise KeyError(f"unknown shard {shard_id!r}")
        old = ray.get(h.drain.remote())
        if node_id is None:
            others = [n for n in matching_nodes() if n != old["node_id"]]
            node_id = others[0] if others else old["node_id"]
        end_host(h)
        del self.handles[shard_id]
        self.stopped.add(shard_id)  # type: ignore[attr-defined]
        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)  # a lost node: elsewhere
        h2 = self._start(shard_id, check_capacity=False, scheduling_strategy=strategy)  # type: ignore[attr-defined]
        info: dict[str, Any] = ray.get(h2.resume.remote())
        self._set_status(shard_id, ACTIVE, info["node_id"])  # type: ignore[attr-defined]
        return info

    def begin_move(self, shard_id: str, node_id: str) -> dict[str, Any]:
        """Start the shard's next host in standby on matching node ``node_id``. Returns ``{"shard_id",
        "from_node", "to_node", "host", "old", "done"}`` (``done``: a stopped shard was simply started
        there). Raises KeyError (unknown shard), :class:`MoveRefused`."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if shard_id not in self.status:
            raise KeyError(f"unknown shard {shard_id!r}")
        if node_id not in matching_nodes():
            raise MoveRefused(f"node {node_id} is not an alive matching node")
        if shard_id in self.pending:
            raise MoveRefused(f"shard {shard_id} is already moving")
        strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)
        old = self.handles.get(shard_id)
        if old is None:  # not running: start it on the target, nothing to hand over
            h = self._start(shard_id, check_capacity=False, scheduling_strategy=strategy)  # type: ignore[attr-defined]
            info = ray.get(h.info.remote())
            self._set_status(shard_id, self.status[shard_id], info["node_id"])  # type: ignore[attr-defined]
            return {"shard_id": shard_id, "from_node": None, "to_node": info["node_id"], "done": True}
        from_node = ray.get(old.info.remote(), timeout=30)["node_id"]
        if from_node == node_id:
            raise MoveRefused(f"shard {shard_id} already runs on node {node_id}")
        tried: dict[str, int] = self.__dict__.setdefault("tried_gens", {})  # an aborted standby's name
        gen = max(self.gens.get(shard_id, 0), tried.get(shard_id, 0)) + 1  # may still be held a while
        tried[shard_id] = gen
        host = self._new_host(shard_id, host_name(shard_id, gen), strategy)  # type: ignore[attr-defined]
        self.pending[shard_id] = (gen, host, node_id)
        return {
            "shard_id": shard_id,
            "from_node": from_node,
            "to_node": node_id,
            "host": host,
            "old": old,
            "done": False,
        }

    def finish_move(self, shard_id: str) -> dict[str, Any]:
        """The fenced handover (step 3 of the module docstring). Returns the new host's info plus
        ``handover_seq`` (N) and ``pause_ms`` (fence to promotion). On a failure the old host takes
        commands again, the standby ends, and the error is raised."""
        gen, host, _node = self.pending.pop(shard_id)
        old = self.handles[shard_id]
        t0 = time.perf_counter()
        drained = self.status.get(shard_id) == DRAINED
        fenced: dict[str, Any] | None = None
        try:
            fenced = ray.get(old.fence.remote(), timeout=60)
            seq = fenced["committed_seq"]
            got = ray.get(host.catch_up.remote(), timeout=60)
            if got != seq:
                raise RuntimeError(f"standby caught up to {got}, the old host stopped at {seq}")
            info: dict[str, Any] = ray.get(host.promote.remote(seq, drained, fenced["last_snapshot_seq"]))
        except Exception:
            end_host(host)
            if fenced is not None and not drained:
                ray.get(old.unfence.remote(), timeout=60)
            raise
        self.handles[shard_id] = host
        self.gens[shard_id] = gen
        pause_ms = (time.perf_counter() - t0) * 1000
        end_host(old)
        self._set_status(shard_id, self.status.get(shard_id, "ACTIVE"), info["node_id"])  # type: ignore[attr-defined]
        return {**info, "handover_seq": seq, "pause_ms": round(pause_ms, 1)}

    def abort_move(self, shard_id: str) -> bool:
        """End a prepared move's standby (the old host never stopped serving); False when none."""
        got = self.pending.pop(shard_id, None)
        if got is None:
            return False
        end_host(got[1])
        return True


# -- the orchestration (gateway route, CLI, rebalancer, bench) -------------------------------------
async def move_shard(
    directory: Any, shard_id: str, node_id: str, lag_events: int = MOVE_LAG_EVENTS
) -> dict[str, Any]:
    """Move ``shard_id`` to matching node ``node_id`` while it serves (steps 1-3). Returns the new
    host's info with ``from_node``, ``handover_seq``, ``pause_ms`` (handover pause), ``move_s``
    (the whole move) and ``handover_window`` (``time.monotonic()`` before and after the handover).
    Raises KeyError, :class:`MoveRefused`, or the error of a failed step (the old host then serves
    on)."""
    t0 = time.perf_counter()
    plan = await directory.begin_move.remote(shard_id, node_id)
    if plan["done"]:
        return {**plan, "pause_ms": 0.0, "move_s": round(time.perf_counter() - t0, 3)}
    host, old = plan["host"], plan["old"]
    try:
        import asyncio

        info = await asyncio.wait_for(host.info.remote(), MOVE_START_TIMEOUT_S)
        if info["node_id"] != node_id:
            raise MoveRefused(f"the new host of {shard_id} started on {info['node_id']}, not {node_id}")
        for _ in range(MOVE_CATCH_UP_ROUNDS):
            seq = await host.catch_up.remote()
            if (await old.info.remote())["committed_seq"] - seq <= lag_events:
                break
    except BaseException:
        await directory.abort_move.remote(shard_id)
        raise
    t_handover = time.monotonic()
    done = await directory.finish_move.remote(shard_id)
    return {
        **done,
        "from_node": plan["from_node"],
        "move_s": round(time.perf_counter() - t0, 3),
        "handover_window": (t_handover, time.monotonic()),  # this process's monotonic clock
    }
