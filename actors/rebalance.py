"""Where shards run, how busy they are, and moving them to spread the load over the matching nodes.

- :class:`LoadWatch` (part of the directory actor): every :data:`actors.placement.PLACEMENT_CHECK_S`
  seconds it asks each running shard where it runs and records a changed node in the ``shards``
  table (a shard that Ray restarted on another node after a node loss), and ``counters()`` gives
  each shard's node and command counter for load measurements.
- :func:`plan_moves` (pure): moves that even out the nodes' **measured commands/s**, not the shard
  count: the busiest node gives the shard whose rate best halves the gap to the idlest node.
- :func:`rebalance` (any process): measure rates over ``window_s`` seconds, plan, and move each
  shard live (:func:`actors.handover.move_shard`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from actors.placement import PLACEMENT_CHECK_S, matching_nodes

log = logging.getLogger(__name__)

REBALANCE_WINDOW_S = 5.0  # seconds over which shard rates are measured
REBALANCE_MIN_GAP = 0.10  # no move while the busiest and idlest nodes differ by <= 10 % of the total
REBALANCE_MAX_MOVES = 8  # moves per rebalance run
_WATCH_WAIT_S = 0.5  # the periodic look waits this long for a shard (a recovering one answers later)


class LoadWatch:
    """Placement and load view of :class:`actors.directory.ShardDirectoryService` (it provides
    ``handles``, ``status``, ``nodes``, ``_infos``, ``_set_status``)."""

    handles: dict[str, Any]
    status: dict[str, str]
    nodes: dict[str, str]
    rebalance_every_s: float
    _next_rebalance: float

    def placement(self, wait_s: float = 2.0) -> dict[str, str]:
        """``{shard_id: node_id}`` of every running shard that answered within ``wait_s`` seconds,
        from the shard itself (the node its process runs on); a changed node is written to the
        ``shards`` table."""
        out: dict[str, str] = {}
        for sid, info in self._infos(wait_s).items():  # type: ignore[attr-defined]
            if not isinstance(info, dict) or not info.get("node_id"):
                continue
            node = str(info["node_id"])
            out[sid] = node
            if self.nodes.get(sid) != node and sid in self.status:
                self._set_status(sid, self.status[sid], node)  # type: ignore[attr-defined]
                self.nodes[sid] = node
        return out

    def counters(self) -> dict[str, dict[str, Any]]:
        """``{shard_id: {"node_id", "pid", "commands"}}`` of the running shards that answered."""
        return {
            sid: {"node_id": i.get("node_id"), "pid": i.get("pid"), "commands": int(i.get("commands") or 0)}
            for sid, i in self._infos(5.0).items()  # type: ignore[attr-defined]
            if isinstance(i, dict)
        }

    def _watch_loop(self) -> None:
        me = None
        while True:
            time.sleep(PLACEMENT_CHECK_S)
            try:
                if me is None:
                    me = ray.get_runtime_context().current_actor
                ray.get(me.placement.remote(_WATCH_WAIT_S))
                if self.rebalance_every_s > 0 and time.monotonic() >= self._next_rebalance:
                    self._next_rebalance = time.monotonic() + self.rebalance_every_s
                    asyncio.run(rebalance(me))
            except Exception as exc:  # not an actor (unit use), shutting down, or a failed move
                log.debug("shard directory: placement check skipped: %s", exc)
                if me is None:
                    return


def plan_moves(
    rates: dict[str, float],
    where: dict[str, str],
    nodes: list[str],
    min_gap: float = REBALANCE_MIN_GAP,
    max_moves: int = REBALANCE_MAX_MOVES,
) -> list[tuple[str, str, str]]:
    """Moves ``[(shard_id, from_node, to_node)]`` that even out the load.

    ``rates``: commands/s per shard; ``where``: node of each shard; ``nodes``: every node that may
    host shards (empty ones too). Greedy: while the busiest and idlest nodes differ by more than
    ``min_gap`` of the total rate, move the busiest node's shard whose rate ``r`` (0 < r < gap)
    makes ``|gap - 2 r|`` smallest. Idle shards (rate 0) never move: a move costs a short pause and
    gains nothing."""
    load = dict.fromkeys(nodes, 0.0)
    on = {n: [] for n in nodes}  # type: dict[str, list[str]]
    for sid, node in where.items():
        if node in load:
            load[node] += rates.get(sid, 0.0)
            on[node].append(sid)
    total = sum(load.values())
    moves: list[tuple[str, str, str]] = []
    while len(moves) < max_moves and total > 0 and len(load) > 1:
        hi = max(load, key=lambda n: (load[n], n))
        lo = min(load, key=lambda n: (load[n], n))
        gap = load[hi] - load[lo]
        if gap <= min_gap * total:
            break
        cands = [s for s in on[hi] if 0 < rates.get(s, 0.0) < gap]
        if not cands:
            break
        best = min(cands, key=lambda s: (abs(gap - 2 * rates[s]), s))
        on[hi].remove(best)
        on[lo].append(best)
        load[hi] -= rates[best]
        load[lo] += rates[best]
        moves.append((best, hi, lo))
    return moves


async def measure_rates(directory: Any, window_s: float = REBALANCE_WINDOW_S) -> dict[str, Any]:
    """``{"rates": {shard_id: commands/s}, "where": {shard_id: node_id}}`` over ``window_s`` seconds
    (a shard whose process changed meanwhile counts from its new start: rate 0)."""
    a = await directory.counters.remote()
    t0 = time.monotonic()
    await asyncio.sleep(window_s)
    b = await directory.counters.remote()
    dt = max(1e-6, time.monotonic() - t0)
    rates = {
        sid: round((b[sid]["commands"] - a[sid]["commands"]) / dt, 2)
        if sid in a and a[sid]["pid"] == b[sid]["pid"]
        else 0.0
        for sid in b
    }
    return {"rates": rates, "where": {sid: str(v["node_id"]) for sid, v in b.items()}}


async def rebalance(
    directory: Any, window_s: float = REBALANCE_WINDOW_S, dry_run: bool = False
) -> dict[str, Any]:
    """Measure, plan and (unless ``dry_run``) move; with one matching node, nothing. Returns
    ``{"rates", "where", "nodes", "loads" (commands/s per node before), "moves": [{"shard_id",
    "from_node", "to_node", "pause_ms" | "error"}]}``."""
    from actors.handover import move_shard

    nodes = await asyncio.to_thread(matching_nodes)
    if len(nodes) < 2:  # nowhere to move: no need to measure
        return {"rates": {}, "where": {}, "nodes": nodes, "loads": dict.fromkeys(nodes, 0.0), "moves": []}
    m = await measure_rates(directory, window_s)
    plan = plan_moves(m["rates"], m["where"], nodes)
    loads = dict.fromkeys(nodes, 0.0)
    for sid, node in m["where"].items():
        if node in loads:
            loads[node] = round(loads[node] + m["rates"].get(sid, 0.0), 2)
    moves: list[dict[str, Any]] = []
    for sid, src, dst in plan:
        row: dict[str, Any] = {"shard_id": sid, "from_node": src, "to_node": dst}
        if not dry_run:
            try:
                done = await move_shard(directory, sid, dst)
                row["pause_ms"] = done["pause_ms"]
            except Exception as exc:  # the shard serves on where it was
                row["error"] = str(exc).splitlines()[-1][:200]
                log.warning("rebalance: move of %s failed: %s", sid, exc)
        moves.append(row)
    return {**m, "nodes": nodes, "loads": loads, "moves": moves}
