"""Read-your-writes over asynchronous projections, and the projector's lag on ``/metrics``.

The projections (orders, allocations, proposals, reservations) follow the shards' logs
(:mod:`persistence.projector`), so a read model may be a few milliseconds behind a write the
client has just been answered. Decision (docs/contracts.md, "Read-your-writes"):

- every gateway process remembers, per (party, shard), the highest seq it acknowledged to that party
  (each command result's ``seqs``; :meth:`ReadYourWrites.note`, called by
  :meth:`gateway.service.GatewayService.run`), in a bounded in-process map;
- a read of a projection on behalf of a party first waits until the projector's checkpoint of each
  shard the party wrote to has reached that seq (:meth:`ReadYourWrites.wait`), polling every 5 ms
  for at most ``wait_s`` (2 s); past that it answers 503 ``projection-behind`` with ``Retry-After: 1``.
  Nothing to wait for costs no database call;
- a read of one entity by id (``GET /v1/allocations/{id}``) also waits for the seq the id carries
  (``X-<shard>-<seq>``: the event that created it), so any party that learned an id (the buyer of a
  reservation the seller confirmed) reads it, through any gateway process;
- ``GET /v1/orders/{id}`` answers from the shard itself (the shard holds every recent order) and
  falls back to the projection for orders the shard no longer holds.

Also :func:`refresh_lag_metrics`: the per-shard lag gauges, read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from actors.core.ids import shard_of
from gateway.problems import Problem
from persistence.projection_store import positions, wait_projected

WAIT_S = 2.0  # longest a read waits for the projector before answering 503
RETRY_AFTER_S = 1
MAX_PARTIES = 100_000  # parties remembered per gateway process (least recently written dropped)


class ReadYourWrites:
    """Per (party, shard) the last seq acknowledged by this process; ``cleared``: {shard: seq} known
    projected (saves a query when every target was already seen passed)."""

    def __init__(self, wait_s: float = WAIT_S, max_parties: int = MAX_PARTIES) -> None:
        self.wait_s = wait_s
        self.max_parties = max_parties
        self.acked: OrderedDict[str, dict[str, int]] = OrderedDict()
        self.projected: dict[str, int] = {}

    def note(self, party_id: str | None, shard_id: str, results: Iterable[Any]) -> None:
        """Remember the highest seq in ``results`` (command result dicts with ``seqs``) for the party."""
        if not party_id:
            return
        top = 0
        for r in results:
            seqs = r.get("seqs") if isinstance(r, dict) else None
            if seqs:
                top = max(top, max(seqs))
        if not top:
            return
        mine = self.acked.get(party_id)
        if mine is None:
            mine = self.acked[party_id] = {}
            if len(self.acked) > self.max_parties:
                self.acked.popitem(last=False)
        else:
            self.acked.move_to_end(party_id)
        if mine.get(shard_id, 0) < top:
            mine[shard_id] = top

    def targets(
        self,
        party_id: str | None,
        shard_ids: Iterable[str] | None = None,
        at_least: dict[str, int] | None = None,
    ) -> dict[str, int]:
        """``{shard_id: seq}`` the party's reads must wait for (only shards not known projected);
        ``at_least``: further ``{shard_id: seq}`` to reach."""
        mine = self.acked.get(party_id or "") or {}
        want = dict(mine) if shard_ids is None else {s: mine[s] for s in shard_ids if s in mine}
        for s, q in (at_least or {}).items():
            want[s] = max(want.get(s, 0), q)
        return {s: q for s, q in want.items() if self.projected.get(s, 0) < q}

    async def wait(
        self,
        pool: Any,
        party_id: str | None,
        shard_ids: Iterable[str] | None = None,
        at_least: dict[str, int] | None = None,
    ) -> None:
        """Wait until the projections hold the party's acknowledged writes (all shards, or
        ``shard_ids``) and the ``at_least`` seqs. Raises a 503 ``projection-behind`` problem
        (``Retry-After: 1``) after :attr:`wait_s` seconds."""
        want = self.targets(party_id, shard_ids, at_least)
        if not want:
            return
        t0 = time.monotonic()
        behind = await wait_projected(pool, want, self.wait_s, poll_s=0.005)
        for s, q in want.items():
            if s not in behind:
                self.projected[s] = max(self.projected.get(s, 0), q)
        if behind:
            lag = ", ".join(f"{s} at {behind[s]} < {want[s]}" for s in sorted(behind))
            raise Problem(
                "projection-behind",
                f"the read model has not reached your last write after {time.monotonic() - t0:.1f} s ({lag})",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                retry_after_s=RETRY_AFTER_S,
            )


def id_position(entity_id: str) -> dict[str, int]:
    """``{shard_id: seq}`` an entity id ``X-<shard>-<seq>`` names (empty for another shape)."""
    sid = shard_of(entity_id)
    seq = entity_id.rpartition("-")[2]
    return {sid: int(seq)} if sid is not None and seq.isdigit() else {}


class LagGauges:
    """``tradedesk_projector_lag_events`` / ``tradedesk_projector_lag_seconds`` / ``tradedesk_projector_seq``
    per shard, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Gauge(
            "tradedesk_projector_lag_events",
            "Committed events not yet in the projections",
            ["shard"],
            registry=registry,
        )
        self.seconds = Gauge(
            "tradedesk_projector_lag_seconds",
            "Age of the oldest committed event not yet in the projections (0 when caught up)",
            ["shard"],
            registry=registry,
        )
        self.seq = Gauge("tradedesk_projector_seq", "Projector checkpoint seq", ["shard"], registry=registry)


async def refresh_lag_metrics(pool: Any, gauges: LagGauges) -> dict[str, dict[str, Any]]:
    """Set the lag gauges from :func:`persistence.projection_store.positions`; return the positions."""
    pos = await positions(pool)
    for sid, p in pos.items():
        gauges.events.labels(sid).set(p["projector_lag_events"])
        gauges.seconds.labels(sid).set(p["projector_lag_s"])
        gauges.seq.labels(sid).set(p["projector_seq"])
    return pos


def with_lag(rows: list[dict[str, Any]], pos: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Shard list rows with ``projector_seq``, ``projector_lag_events``, ``projector_lag_s`` added
    (None for a shard the projector does not know)."""
    for r in rows:
        p = pos.get(r.get("shard_id", ""), {})
        for k in ("projector_seq", "projector_lag_events", "projector_lag_s"):
            r[k] = p.get(k)
    return rows
