"""Snapshots of a shard's engine, the part of :class:`actors.shard_service.ShardService` that takes,
stores and learns them (docs/contracts.md, "Snapshots").

``inline`` mode: an engine snapshot in the batch every ``snapshot_every`` events, encoded in a
thread and stored after the batch's commit. ``background`` mode (the default): the shard takes none
in its batches; the snapshot builder (``actors/snapshot_builder.py``) writes them from the committed
log and the shard now and then reads the newest one back to move its rollback checkpoint forward.
:meth:`SnapshotMixin.snapshot_now` (drain, handover, shutdown) snapshots in either mode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from actors.shard_recovery import Checkpoint
from persistence.event_store import encode_snapshot

if TYPE_CHECKING:
    from actors.core.engine import ShardEngine
    from persistence.store import EventStore

log = logging.getLogger("actors.shard_service")


class SnapshotMixin:
    """Snapshot methods of :class:`actors.shard_service.ShardService` (it provides the state below)."""

    shard_id: str
    store: EventStore
    snapshot_every: int
    snapshot_mode: str
    last_snapshot_seq: int
    committed_seq: int
    _checkpoint: Checkpoint | None
    _dirty: bool
    _learning: bool

    def _get_lock(self) -> asyncio.Lock:
        raise NotImplementedError

    async def flush(self) -> int:
        raise NotImplementedError

    async def _ready(self) -> ShardEngine:
        raise NotImplementedError

    def _snapshot_if_due(self, engine: ShardEngine, force: bool = False) -> tuple[int, dict[str, Any]] | None:
        seq = int(engine.seq)
        if seq <= self.last_snapshot_seq or not (force or self.snapshot_mode == "inline"):
            return None
        every = self.snapshot_every
        if not (force or (every > 0 and seq // every > self.last_snapshot_seq // every)):
            return None
        self.last_snapshot_seq = seq
        return seq, engine.snapshot()

    async def _write_snapshot(self, seq: int, snap: dict[str, Any], raise_errors: bool = False) -> None:
        """Encode (in a thread) and store a snapshot; it also becomes the in-memory checkpoint."""
        try:
            blob = await asyncio.to_thread(encode_snapshot, snap)
            cp = self._checkpoint  # snapshots may finish out of order: never move the checkpoint back
            if cp is not None and not self._dirty and cp.seq < seq:
                self._checkpoint = Checkpoint(seq, blob, [r for r in cp.rows if r[0] > seq])
            elif cp is None and self.committed_seq == seq and not self._dirty:
                self._checkpoint = Checkpoint(seq, blob)
            await self.store.save_snapshot(self.shard_id, seq, blob)
        except Exception as exc:  # a missed snapshot only makes the next recovery longer
            if raise_errors:
                raise
            log.warning("shard %s: snapshot at %d failed: %s", self.shard_id, seq, exc)

    async def _learn_snapshot(self) -> None:
        """Background mode: read the store's latest snapshot (the builder's); a newer one becomes
        ``last_snapshot_seq`` and the base of the rollback checkpoint (its rows up to that seq are
        dropped), so the checkpoint holds about ``snapshot_every`` rows, as inline. Without a
        checkpoint (more than ``memory_tail`` rows since the last base) rollback reads the store."""
        newest = getattr(self.store, "latest_snapshot_seq", None)  # the seq first: no state read
        try:
            if newest is not None and await newest(self.shard_id) <= self.last_snapshot_seq:
                return
            snap = await self.store.latest_snapshot(self.shard_id)
        except Exception as exc:  # a missed look only keeps the older checkpoint
            log.info("shard %s: latest snapshot not read: %s", self.shard_id, exc)
            return
        finally:
            self._learning = False
        if snap is None or snap[0] <= self.last_snapshot_seq:
            return
        seq, state = snap
        self.last_snapshot_seq = seq
        cp = self._checkpoint
        if cp is not None and not self._dirty:
            self._checkpoint = cp.rebased(seq, state) or cp

    async def snapshot_now(self) -> int:
        """Write a snapshot at the committed seq now; return that seq."""
        async with self._get_lock():
            await self.flush()
            engine = await self._ready()
            snap = self._snapshot_if_due(engine, force=True)
            if snap is not None:
                await self._write_snapshot(*snap, raise_errors=True)
            return self.last_snapshot_seq
