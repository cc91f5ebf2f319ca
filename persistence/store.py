"""The event-store contract: what a shard needs from wherever its log lives.

:class:`EventStore` is a :class:`typing.Protocol` with two implementations that pass the same
contract suite (``tests/contract/``): :class:`persistence.memory_store.MemoryEventStore` (in memory,
for unit tests of the shard service) and :class:`persistence.event_store.PostgresEventStore`
(asyncpg). Each shard actor writes its own log through a :class:`persistence.shard_writer.ShardWriter`
(a :class:`PostgresEventStore` on the shard's own small pool, plus the Redis fan-out).

Semantics every implementation keeps:

- ``append(rows)`` writes one batch atomically: all of its events, or nothing (the projections
  follow the log asynchronously, :mod:`persistence.projector`).
- Fencing on ``(shard_id, seq)``: a batch's event seqs must be contiguous and start at the shard's
  committed ``max_seq + 1``; otherwise (a stale instance, a concurrent writer, a replayed batch)
  :class:`SeqConflict` is raised and nothing is written.
- Errors say whether the batch is known not to be written (:class:`CommitFailed`, its subclass
  :class:`SeqConflict`) or may have been (:class:`CommitOutcomeUnknown`: e.g. the connection was
  lost while COMMIT was in flight). Callers may resolve an unknown outcome with ``max_seq``.
- ``read_events`` returns rows ``(seq, type, ts, schema_version, payload)`` oldest first; ``payload``
  is the MessagePack body (``bytes``) or, for rows stored as JSON before migration 0010, JSON text
  (``str``); :func:`persistence.event_store.decode_event` reads both.
- Snapshots: ``save_snapshot`` is idempotent per (shard, seq); ``latest_snapshot`` returns the one
  with the highest seq. Stores the background snapshot builder runs over (:class:`SnapshotSource`:
  PostgreSQL and in memory) also answer ``snapshot_positions()``: per registered shard, its latest
  snapshot seq, its committed head and the seconds since that snapshot (one cheap query). A store
  may answer ``latest_snapshot_seq(shard_id)`` (all three do): the seq alone, no state read.
- The shards registry: ``upsert_shard`` inserts or updates status (and node when given);
  ``list_shards`` returns every row sorted by shard id.

Units: ``ts`` epoch ms; seqs are 1, 2, 3... per shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from persistence.event_store import BatchRows

EventRow: TypeAlias = tuple[int, str, int, int, bytes | str]
"""One stored event: ``(seq, type, ts epoch ms, schema_version, payload)``; payload as MessagePack
bytes, or JSON text for rows stored before migration 0010."""

Snapshot: TypeAlias = tuple[int, "str | bytes"]
"""``(seq, state)``: state as JSON text or zlib-compressed JSON bytes (see ``event_store``)."""


class StoreError(RuntimeError):
    """Base of the event store's errors."""


class CommitFailed(StoreError):
    """The batch was definitely not written (nothing of it is in the store)."""


class SeqConflict(CommitFailed):
    """Fencing: the batch's seqs collide with (or do not follow) the shard's committed seqs: a stale
    or concurrent writer. Nothing was written."""


class CommitOutcomeUnknown(StoreError):
    """The commit was sent but its outcome was not seen (connection lost during COMMIT, timeout):
    the batch may or may not be in the store."""


class EventStore(Protocol):
    """Storage of shard event logs, snapshots and the shards registry. A store may also answer
    ``place_results(keys)`` (the PostgreSQL one does, from the ``client_orders`` projection): the
    shard's bounded idempotency asks it for keys it has forgotten."""

    async def append(self, rows: BatchRows) -> int:
        """Write one batch atomically; return its last seq (0 for an empty batch).

        Raises :class:`SeqConflict`, :class:`CommitFailed` or :class:`CommitOutcomeUnknown`."""
        ...

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """At most ``limit`` events of ``shard_id`` with seq > ``after_seq``, oldest first."""
        ...

    async def max_seq(self, shard_id: str) -> int:
        """Highest committed seq of the shard (0 when none)."""
        ...

    async def save_snapshot(self, shard_id: str, seq: int, state: str | bytes) -> None:
        """Store the engine state after event ``seq``; re-saving the same seq is a no-op."""
        ...

    async def latest_snapshot(self, shard_id: str) -> Snapshot | None:
        """The snapshot with the highest seq, or None."""
        ...

    async def upsert_shard(
        self, shard_id: str, region: str, commodity: str, status: str = "ACTIVE", node_id: str | None = None
    ) -> None:
        """Register a shard or update its status (and node when given)."""
        ...

    async def list_shards(self) -> list[dict[str, Any]]:
        """Every registered shard: ``{"shard_id", "region", "commodity", "status", "node_id"}``."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotPosition:
    """Where a registered shard's latest snapshot stands against its log: ``snapshot_seq`` (0 = no
    snapshot), ``head_seq`` (highest committed seq, 0 = no event), ``since_s``: seconds since that
    snapshot was stored, or, without one, since the shard's first event was recorded (None: neither)."""

    shard_id: str
    region: str
    commodity: str
    snapshot_seq: int
    head_seq: int
    since_s: float | None

    @property
    def new_events(self) -> int:
        """Committed events after the latest snapshot."""
        return max(0, self.head_seq - self.snapshot_seq)


class SnapshotSource(EventStore, Protocol):
    """An :class:`EventStore` that also tells, per registered shard, how far its latest snapshot is
    behind its log (what :class:`actors.snapshot_builder.SnapshotBuilder` polls)."""

    async def snapshot_positions(self) -> list[SnapshotPosition]:
        """A :class:`SnapshotPosition` per shard of the registry, by shard id."""
        ...


def check_fence(shard_id: str, committed: int, seqs: list[int]) -> None:
    """Raise :class:`SeqConflict` unless ``seqs`` are ``committed + 1, committed + 2, ...``."""
    if seqs != list(range(committed + 1, committed + 1 + len(seqs))):
        first = seqs[0] if seqs else None
        raise SeqConflict(
            f"seq conflict in {shard_id}: batch starts at {first}, committed seq is {committed} "
            "(duplicate or out-of-order seq: a stale or concurrent writer)"
        )
