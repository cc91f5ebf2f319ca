"""Background snapshots of shard engines, built from the committed log, never on a shard's matching
loop (the Ray shell is ``actors/snapshotter_actor.py``; no Ray here, so it runs in unit tests on the
in-memory store).

For one shard :meth:`SnapshotBuilder.build` loads the latest stored snapshot (or starts an empty
engine), applies the committed events after it in pages (:func:`actors.shard_recovery.apply_rows`:
the shard's own recovery code), and stores the engine snapshot at the last applied seq
(:func:`persistence.event_store.encode_snapshot`). Recovery applies events and the engine's state is
a function of its events alone (closed-order and idempotency windows included,
``actors/core/retention.py``), so the stored snapshot is exactly what the shard's own engine would
snapshot at that seq; a batch commits atomically, so that seq is always a batch boundary. The
engines of the last ``keep`` shards built stay in memory, so the next build of such a shard only
applies the events after its previous build (no snapshot decode and restore; the same state).

Due rule (:func:`snapshot_due`), by size or time: at least ``every`` committed events after the
latest snapshot, or at least one after it and ``interval_s`` seconds since it (for a shard without a
snapshot: since its first event). :meth:`SnapshotBuilder.run_once` asks the store where every
registered shard stands (:meth:`persistence.store.SnapshotSource.snapshot_positions`: one cheap
query) and builds the due ones, one shard at a time. A snapshot saved twice at the same seq (the
shard's own ``snapshot_now`` at a drain) is a no-op: both are the same state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from actors.core.engine import ShardEngine
from actors.gc_tuning import gc_paused
from actors.shard_recovery import apply_rows, engine_from_state
from persistence.event_store import encode_snapshot
from persistence.store import SnapshotPosition, SnapshotSource

log = logging.getLogger(__name__)

SIZE, TIME = "size", "time"
"""Why a snapshot was due (:func:`snapshot_due`); ``asked`` for a build asked for by hand."""


def snapshot_due(pos: SnapshotPosition, every: int, interval_s: float) -> str | None:
    """``"size"`` when at least ``every`` events (> 0) follow the latest snapshot, ``"time"`` when at
    least one does and ``interval_s`` (> 0) seconds have passed since it (``pos.since_s``), else
    None. ``every`` or ``interval_s`` 0 turns that half off."""
    new = pos.new_events
    if new <= 0:
        return None
    if every > 0 and new >= every:
        return SIZE
    if interval_s > 0 and pos.since_s is not None and pos.since_s >= interval_s:
        return TIME
    return None


@dataclass(slots=True)
class Built:
    """One stored snapshot: ``seq`` (its seq), ``base_seq`` (the seq it started from: the stored
    snapshot it loaded, or its previous build kept in memory; 0 = empty engine), ``events`` applied,
    ``reason`` (``size`` | ``time`` | ``asked``), ``bytes`` stored, and seconds spent: ``load_s``
    (base snapshot read and restored), ``apply_s`` (events read and applied), ``encode_s`` (engine
    snapshot + encoding), ``save_s``."""

    shard_id: str
    seq: int
    base_seq: int
    events: int
    reason: str
    bytes: int
    load_s: float
    apply_s: float
    encode_s: float
    save_s: float


class SnapshotBuilder:
    """Builds shard snapshots from the committed log of ``store``.

    ``every``: events after the latest snapshot that make one due (0 = no size rule);
    ``interval_s``: seconds after the latest snapshot that make one due when any event follows it
    (0 = no time rule); ``page``: events per store read; ``profile``: ranking profile of an engine
    started without a snapshot (None = the commodity's default: the shards' ``profile``, so the
    snapshot equals theirs); ``keep``: engines kept in memory between builds (most recently built
    shards; 0 = load the latest snapshot every time)."""

    def __init__(
        self,
        store: SnapshotSource,
        *,
        every: int = 100_000,
        interval_s: float = 300.0,
        page: int = 20_000,
        profile: str | None = None,
        keep: int = 4,
    ) -> None:
        if every < 0 or interval_s < 0 or page < 1 or keep < 0:
            raise ValueError("every, interval_s and keep must be >= 0, page >= 1")
        self.store = store
        self.every, self.interval_s, self.page, self.profile = int(every), float(interval_s), page, profile
        self.counters = dict.fromkeys(("passes", "builds", "events", "bytes", "errors"), 0)
        self.build_s = 0.0
        self.last: dict[str, Built] = {}  # shard id -> its last build
        self.keep = keep
        self._engines: dict[str, ShardEngine] = {}  # shard id -> engine at its last build, oldest first
        self._lock = asyncio.Lock()

    def due(self, pos: SnapshotPosition) -> str | None:
        """Why a snapshot of ``pos`` is due now (:func:`snapshot_due`), or None."""
        return snapshot_due(pos, self.every, self.interval_s)

    async def build(self, shard_id: str, region: str, commodity: str, reason: str = "asked") -> Built | None:
        """Store a snapshot of ``shard_id`` at its committed head; None when no event follows the
        latest snapshot. Raises the store's errors and RuntimeError on a gap in the log."""
        t0 = time.perf_counter()
        engine = self._engines.pop(shard_id, None)
        if engine is None:
            snap = await self.store.latest_snapshot(shard_id)
            base = 0 if snap is None else snap[0]
            with gc_paused():  # a restore builds the whole book and no cycles
                engine = engine_from_state(None if snap is None else snap[1], region, commodity, self.profile)
            if engine.seq != base:
                raise RuntimeError(f"snapshot of {shard_id} at {base} holds seq {engine.seq}")
        base = int(engine.seq)
        t1 = time.perf_counter()
        seq = base
        while True:
            rows = await self.store.read_events(shard_id, seq, self.page)
            seq = apply_rows(engine, seq, rows, shard_id)
            if len(rows) < self.page:
                break
        if self.keep:
            self._engines[shard_id] = engine  # the newest last: beyond ``keep`` the oldest go
            while len(self._engines) > self.keep:
                self._engines.pop(next(iter(self._engines)))
        if seq == base:
            return None
        t2 = time.perf_counter()
        with gc_paused():
            blob = encode_snapshot(engine.snapshot())
        t3 = time.perf_counter()
        await self.store.save_snapshot(shard_id, seq, blob)
        t4 = time.perf_counter()
        built = Built(shard_id, seq, base, seq - base, reason, len(blob), t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        self.counters["builds"] += 1
        self.counters["events"] += built.events
        self.counters["bytes"] += built.bytes
        self.build_s += t4 - t0
        self.last[shard_id] = built
        log.info("snapshot of %s at %d (%s, %d events, %.3f s)", shard_id, seq, reason, built.events, t4 - t0)
        return built

    async def run_once(self) -> list[Built]:
        """Build every due snapshot now, one shard at a time (one pass at a time); a shard whose build
        fails is logged and counted in ``errors``, the others go on. Returns what was built."""
        async with self._lock:
            self.counters["passes"] += 1
            out: list[Built] = []
            for pos in await self.store.snapshot_positions():
                kept = self._engines.get(pos.shard_id)
                if kept is not None and kept.seq > pos.head_seq:  # not this log's history: load again
                    del self._engines[pos.shard_id]
                reason = self.due(pos)
                if reason is None:
                    continue
                try:
                    built = await self.build(pos.shard_id, pos.region, pos.commodity, reason)
                except Exception as exc:  # one damaged shard must not stop the others' snapshots
                    self.counters["errors"] += 1
                    log.warning("snapshot of %s failed: %s: %s", pos.shard_id, type(exc).__name__, exc)
                    continue
                if built is not None:
                    out.append(built)
            return out

    def info(self) -> dict[str, Any]:
        """Settings, counters (``passes``, ``builds``, ``events`` applied, ``bytes`` stored,
        ``errors``), ``build_s`` (seconds spent building) and ``last``: each shard's last build
        (:class:`Built` as a dict)."""
        return {
            "every": self.every,
            "interval_s": self.interval_s,
            **self.counters,
            "build_s": round(self.build_s, 4),
            "last": {sid: asdict(b) for sid, b in self.last.items()},
        }
