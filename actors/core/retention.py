"""Bounded state of a shard: closed orders, old idempotency results, dead proposals and reservations
and old near-duplicate keys leave memory, deterministically from the events (docs/matching.md,
"Retention").

- **Closed window**: an order that is fully closed (FILLED, CANCELLED or EXPIRED with no open and
  no reserved kg) and the result of a rejected place enter one FIFO; beyond ``closed_retention``
  entries the oldest leave (in groups of up to ``closed_retention // 32``): the order, its
  idempotency result, and every proposal and reservation of that order (none is live: a live
  reservation holds reserved kg on both of its orders). A rejection's result leaves the same way.
- **Near-duplicate keys** older than twice the commodity's window behind the shard clock are swept
  when the map has doubled since the last sweep.
- **Expiry and hold heaps** drop entries of orders and reservations no longer live when they grow
  past twice the state they index (a rebuild that changes no behaviour).

All of it runs while events are applied (at the end of :meth:`Projector.apply`), so live, replay
and snapshot + tail hold the same state. Orders evicted during an :meth:`execute` stay readable
through ``get_order`` until the next one starts (``_batch_evicted``, not state), so the host sees
the final state of every order a batch touched. ``evicted_any`` tells the host whether an idempotency key
may have left memory: only then must a retry's key be looked up elsewhere and handed in with
:meth:`Retention.remember_result` before the batch runs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from actors.core import orders as st
from actors.core.commands import PlaceOrder
from actors.core.orders import Order
from actors.core.state import NEAR_SWEEP_MIN, ShardState

CLOSED_STATUSES = frozenset((st.FILLED, st.CANCELLED, st.EXPIRED))
HEAP_SLACK = 1024  # stale heap entries tolerated beyond twice the live state


class Retention(ShardState):
    """The retention windows of a shard (see the module docstring)."""

    # ---- recording (called by the projector while it applies an event)

    def _order_closed(self, o: Order) -> None:
        """Enter ``o`` in the closed window if it is now fully closed."""
        if o.open_kg == 0 and o.reserved_kg == 0 and o.status in CLOSED_STATUSES:
            self._closed.append(o.order_id)

    def _rejection_closed(self, key: tuple[str, str], seq: int) -> None:
        """Enter the result of a rejected place (recorded at ``seq``) in the closed window."""
        self._closed.append((key, seq))

    def _link(self, order_ids: Sequence[str], ref: str) -> None:
        """Remember that proposal / reservation ``ref`` belongs to these orders (evicted with them)."""
        links = self._links
        for oid in order_ids:
            refs = links.get(oid)
            if refs is None:
                links[oid] = [ref]
            else:
                refs.append(ref)

    def _near_recorded(self) -> None:
        """Sweep old near-duplicate keys once the map doubled since the last sweep."""
        if len(self.near_dups) < self._near_sweep_at:
            return
        horizon = self.clock - 2 * self.spec.near_duplicate_window_ms
        self.near_dups = {k: v for k, v in self.near_dups.items() if v[1] >= horizon}
        self._near_sweep_at = max(NEAR_SWEEP_MIN, 2 * len(self.near_dups))

    def _trim(self) -> None:
        """Evict the oldest closed entries beyond ``closed_retention``. Called at the end of an
        apply once the window holds ``closed_retention // 32`` entries more (evicting in small
        groups costs one call per group; the group size follows from the window, so it is the
        same live, in replay and after a restore)."""
        fifo = self._closed
        keep = self.closed_retention
        orders = self.orders
        results = self.results
        links = self._links
        while len(fifo) > keep:
            entry = fifo.popleft()
            if entry.__class__ is not str:
                key, seq = entry
                res = results.get(key)
                if res is not None and res["order_id"] is None and res["seqs"][:1] == [seq]:
                    del results[key]
                continue
            o = orders.pop(entry, None)
            if o is None:
                continue
            if self._in_batch:
                self._batch_evicted[entry] = o
            key = (o.party_id, o.client_order_id)
            res = results.get(key)
            if res is not None and res["order_id"] == entry:
                del results[key]
            if links and (refs := links.pop(entry, None)):
                for ref in refs:
                    if ref.startswith("P-"):
                        self.proposals.pop(ref, None)
                    else:
                        self.reservations.pop(ref, None)
        self.evicted_any = True
        if len(self._expiries) > HEAP_SLACK or len(self._holds) > HEAP_SLACK:
            self._compact_heaps()

    def _compact_heaps(self) -> None:
        """Drop expiry / hold entries whose order or reservation is gone or no longer live."""
        orders = self.orders
        if len(self._expiries) > 2 * len(orders) + HEAP_SLACK:
            live = (st.OPEN, st.PARTIALLY_FILLED)
            self._expiries = [
                (due, oid)
                for due, oid in self._expiries
                if (o := orders.get(oid)) is not None and o.valid_until == due and o.status in live
            ]
            heapq.heapify(self._expiries)
        resv = self.reservations
        if len(self._holds) > 2 * len(resv) + HEAP_SLACK:
            self._holds = [
                (due, rid)
                for due, rid in self._holds
                if (r := resv.get(rid)) is not None and r["status"] == "ACTIVE"
            ]
            heapq.heapify(self._holds)

    # ---- the host's side of idempotency beyond the window

    def remember_result(self, party_id: str, client_order_id: str, result: dict[str, Any]) -> None:
        """Hand in the original result of a place command whose key may have left memory (looked up
        by the host, e.g. in the orders projection) before the next :meth:`execute`: a PlaceOrder
        with that key then answers this result with ``duplicate: true`` and records nothing. Kept
        for the next batch only; not state (never in a snapshot, never needed by replay)."""
        self._remembered[(party_id, client_order_id)] = dict(result)

    def result_lookups(self, commands: Sequence[Any]) -> list[tuple[str, str]]:
        """``(party_id, client_order_id)`` of the batch's place commands whose result is not in
        memory, when a key may have been evicted (``evicted_any``); else ``[]``. The host looks these
        up and calls :meth:`remember_result` for the ones it finds."""
        if not self.evicted_any:
            return []
        out: list[tuple[str, str]] = []
        for cmd in commands:
            if (
                type(cmd) is PlaceOrder
                and isinstance(cmd.party_id, str)
                and isinstance(cmd.client_order_id, str)
            ):
                key = (cmd.party_id, cmd.client_order_id)
                if key not in self.results and key not in self._remembered:
                    out.append(key)
        return out

    # ---- snapshot

    def retention_snapshot(self) -> dict[str, Any]:
        """The windows' state for the shard snapshot (JSON-able)."""
        return {
            "closed_retention": self.closed_retention,
            "evicted_any": self.evicted_any,
            "closed": [e if isinstance(e, str) else [e[0][0], e[0][1], e[1]] for e in self._closed],
            "near_sweep_at": self._near_sweep_at,
        }

    def restore_retention(self, snap: dict[str, Any]) -> None:
        """Inverse of :meth:`retention_snapshot`, after orders, proposals, reservations and results
        were restored. A snapshot written before the windows existed gets its closed orders (in
        snapshot order) and rejection results as the window, trimmed at once."""
        self._links = {}
        for p in self.proposals.values():
            self._link((p["buy_order_id"], p["sell_order_id"]), p["proposal_id"])
        for r in self.reservations.values():
            self._link((r["buy_order_id"], r["sell_order_id"]), r["reservation_id"])
        if "closed" in snap:
            self.evicted_any = bool(snap["evicted_any"])
            self._near_sweep_at = int(snap["near_sweep_at"])
            for e in snap["closed"]:
                self._closed.append(e if isinstance(e, str) else ((e[0], e[1]), int(e[2])))
            return
        for o in self.orders.values():
            self._order_closed(o)
        for key, res in self.results.items():
            if res["order_id"] is None and res["seqs"]:
                self._rejection_closed(key, res["seqs"][0])
        self._trim()
