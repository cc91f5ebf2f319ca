"""The :class:`persistence.store.EventStore` in memory: for unit tests of the shard service and
for benchmarks of the core without a database. Same contract as PostgreSQL (``tests/contract/``):
atomic batches, fencing on ``(shard_id, seq)``, the same values refused (:mod:`persistence.storable`),
events read back as stored (MessagePack bodies), snapshots and the shards registry, and the
snapshot positions the background snapshot builder polls (times from :attr:`MemoryEventStore.clock`,
which tests may replace). Not durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from persistence.event_store import BatchRows, event_row
from persistence.storable import rows_problem
from persistence.store import CommitFailed, EventRow, Snapshot, SnapshotPosition, check_fence


class MemoryEventStore:
    """Event logs, snapshots and shards in dicts.

    One ``asyncio.Lock`` serialises appends, so two writers racing for the same seq see the same
    fencing as on PostgreSQL. ``clock``: epoch seconds, stamps snapshots and each shard's first event
    (``snapshot_positions``)."""

    def __init__(self) -> None:
        self.events: dict[str, list[EventRow]] = {}
        self.snapshots: dict[str, dict[int, str | bytes]] = {}
        self.shards: dict[str, dict[str, Any]] = {}
        self.clock: Callable[[], float] = time.time
        self._snapshot_at: dict[tuple[str, int], float] = {}  # (shard, snapshot seq) -> clock()
        self._first_event_at: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def append(self, rows: BatchRows) -> int:
        """Append one batch atomically; return its last seq. Raises
        :class:`~persistence.store.SeqConflict` (stale or concurrent writer) or
        :class:`~persistence.store.CommitFailed` (a value PostgreSQL would refuse)."""
        if not rows.events:
            return 0
        async with self._lock:
            log = self.events.setdefault(rows.shard_id, [])
            check_fence(rows.shard_id, log[-1][0] if log else 0, [int(e[1]) for e in rows.events])
            problem = rows_problem(rows)
            if problem is not None:
                raise CommitFailed(f"batch not written: {rows.shard_id}: {problem}")
            if not log:
                self._first_event_at[rows.shard_id] = self.clock()
            log.extend(event_row(e) for e in rows.events)
        return rows.last_seq

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """Events with seq > ``after_seq``, oldest first, at most ``limit``."""
        log = self.events.get(shard_id, [])
        start = max(0, int(after_seq))  # seqs are 1..n: event seq k sits at index k - 1
        return list(log[start : start + limit])

    async def max_seq(self, shard_id: str) -> int:
        """Highest committed seq (0 when none)."""
        log = self.events.get(shard_id)
        return log[-1][0] if log else 0

    async def save_snapshot(self, shard_id: str, seq: int, state: str | bytes) -> None:
        """Keep the state after ``seq``; re-saving the same seq keeps the first."""
        if int(seq) not in self.snapshots.setdefault(shard_id, {}):
            self.snapshots[shard_id][int(seq)] = state
            self._snapshot_at[(shard_id, int(seq))] = self.clock()

    async def latest_snapshot(self, shard_id: str) -> Snapshot | None:
        """The snapshot with the highest seq, or None."""
        snaps = self.snapshots.get(shard_id)
        if not snaps:
            return None
        seq = max(snaps)
        return (seq, snaps[seq])

    async def latest_snapshot_seq(self, shard_id: str) -> int:
        """Seq of the newest snapshot (0 when none)."""
        return max(self.snapshots.get(shard_id) or [0])

    async def upsert_shard(
        self, shard_id: str, region: str, commodity: str, status: str = "ACTIVE", node_id: str | None = None
    ) -> None:
        """Register a shard or update its status (and node when given)."""
        row = self.shards.setdefault(
            shard_id, {"shard_id": shard_id, "region": region, "commodity": commodity, "node_id": None}
        )
        row["status"] = status
        if node_id is not None:
            row["node_id"] = node_id

    async def list_shards(self) -> list[dict[str, Any]]:
        """Every shard row, by shard id."""
        return [dict(self.shards[k]) for k in sorted(self.shards)]

    async def snapshot_positions(self) -> list[SnapshotPosition]:
        """Per registered shard: latest snapshot seq, committed head and seconds since that snapshot
        (else since the first event; None when neither), by shard id."""
        out = []
        now = self.clock()
        for sid in sorted(self.shards):
            row = self.shards[sid]
            snaps = self.snapshots.get(sid)
            seq = max(snaps) if snaps else 0
            stamp = self._snapshot_at.get((sid, seq)) if snaps else self._first_event_at.get(sid)
            since = None if stamp is None else now - stamp
            head = await self.max_seq(sid)
            out.append(SnapshotPosition(sid, row["region"], row["commodity"], seq, head, since))
        return out
