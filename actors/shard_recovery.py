"""What a shard keeps in memory to undo a failed batch cheaply, and the helpers its one recovery
routine uses (``actors/shard_service.py``, and the background snapshot builder,
``actors/snapshot_builder.py``): an engine from a stored state, applying rows, telling whether a
batch is in the store.

- :class:`Checkpoint`: the latest snapshot as encoded bytes (or None = empty engine) and the committed
  event rows after it. Rebuilding from it costs a snapshot decode + restore + the rows.
- :class:`CommittedShadow`: a second engine kept at the committed seq: every committed batch's rows
  are applied to it (decoded copies, so the two engines share no objects). A failed batch is then
  undone by swapping the shadow in (O(1)); a new shadow is rebuilt from the checkpoint in a worker
  thread while the shard goes on serving, and catches up with the rows committed meanwhile.

Measured with ``tradedesk bench rollback`` (see docs/contracts.md): the engine snapshot per batch
that a naive pre-batch copy needs costs hundreds of ms for a book of a few thousand orders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from actors.core.engine import ShardEngine
from actors.gc_tuning import gc_paused
from persistence.event_store import BatchRows, decode_event, decode_snapshot, event_row
from persistence.store import EventRow, EventStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Checkpoint:
    """Committed state in memory: the engine at ``seq`` (``state``: encoded snapshot, None = empty
    engine) and the committed event rows after it (seqs ``seq + 1, seq + 2, ...``)."""

    seq: int
    state: str | bytes | None
    rows: list[EventRow] = field(default_factory=list)

    def rebased(self, seq: int, state: str | bytes) -> Checkpoint | None:
        """The same committed state on a later snapshot (``state`` at ``seq``): only the rows after
        ``seq`` are kept. None when ``seq`` is not after :attr:`seq` and within the rows."""
        if not self.seq < seq <= self.seq + len(self.rows):
            return None
        rows = self.rows[seq - self.seq :]  # rows are seq + 1, seq + 2, ... without a gap
        return Checkpoint(seq, state, rows) if not rows or rows[0][0] == seq + 1 else None


def engine_from_state(
    state: str | bytes | None, region: str, commodity: str, profile: str | None = None
) -> ShardEngine:
    """The engine a shard starts from: a stored snapshot state (encoded, its own region, commodity
    and profile win) or, for None, an empty engine of ``region``/``commodity`` with ``profile``
    (None = the commodity's default). Raises ``zlib.error`` / ``msgspec.DecodeError`` on a damaged
    snapshot."""
    if state is not None:
        return ShardEngine.from_snapshot(decode_snapshot(state))
    if profile:
        return ShardEngine(region, commodity, profile)
    return ShardEngine(region, commodity)


def apply_rows(engine: ShardEngine, seq: int, rows: list[EventRow], shard_id: str) -> int:
    """Apply event rows that must follow ``seq`` without a gap; return the new seq. Raises
    RuntimeError on a gap."""
    apply = engine.apply
    with gc_paused():  # a page of events builds many objects and no cycles
        for row in rows:
            if row[0] != seq + 1:
                raise RuntimeError(f"event log gap in {shard_id}: expected {seq + 1}, got {row[0]}")
            apply(decode_event(row))
            seq += 1
    return seq


class CommittedShadow:
    """A second engine at the committed seq. ``engine_from``: state (encoded snapshot or None) ->
    engine; ``shard_id`` for messages."""

    def __init__(self, engine_from: Callable[[str | bytes | None], ShardEngine], shard_id: str) -> None:
        self.engine_from = engine_from
        self.shard_id = shard_id
        self.engine: ShardEngine | None = None
        self._gen = 0
        self.builds = 0
        self._task: asyncio.Task[None] | None = None
        self._pending: list[EventRow] | None = None  # rows committed while a build runs

    def reset(self) -> None:
        """Forget the shadow (and any build in progress)."""
        self.engine = None
        self._pending = None
        self._gen += 1

    def advance(self, rows: list[EventRow]) -> None:
        """Apply a committed batch's rows (kept for later while a build runs); a shadow that does not
        fit them is dropped."""
        eng = self.engine
        if eng is None and self._pending is not None:
            self._pending.extend(rows)
            return
        if eng is None or not rows:
            return
        if int(rows[0][0]) != eng.seq + 1:
            self.engine = None
            return
        apply_rows(eng, eng.seq, rows, self.shard_id)

    def take(self, seq: int) -> ShardEngine | None:
        """The shadow if it is at ``seq`` (it is then no longer a shadow), else None."""
        eng = self.engine
        self.reset()
        return eng if eng is not None and eng.seq == seq else None

    def rebuild(self, checkpoint: Callable[[], Checkpoint | None]) -> None:
        """Start building a new shadow from the current checkpoint in a worker thread; when done it
        catches up with the rows committed meanwhile (collected by :meth:`advance`)."""
        self.reset()
        cp = checkpoint()
        if cp is None:
            return
        gen, state, seq0, rows = self._gen, cp.state, cp.seq, list(cp.rows)
        self._pending = []

        def build() -> ShardEngine:
            eng = self.engine_from(state)
            apply_rows(eng, seq0, rows, self.shard_id)
            return eng

        async def run() -> None:
            try:
                eng = await asyncio.to_thread(build)
            except Exception as exc:  # no shadow: a failed batch then rebuilds from the checkpoint
                log.warning("shard %s: shadow build failed: %s", self.shard_id, exc)
                return
            if gen != self._gen or self._pending is None:
                return  # reset meanwhile
            pending, self._pending = self._pending, None
            try:
                apply_rows(eng, eng.seq, [r for r in pending if r[0] > eng.seq], self.shard_id)
            except RuntimeError as exc:
                log.warning("shard %s: shadow catch-up failed: %s", self.shard_id, exc)
                return
            self.engine = eng
            self.builds += 1

        self._task = asyncio.get_running_loop().create_task(run())

    async def wait(self) -> None:
        """Wait for a build in progress (tests, benchmarks)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


async def batch_in_store(store: EventStore, rows: BatchRows, timeout_s: float = 5.0) -> bool | None:
    """After an unclear append error: True if the batch's events are in the store as sent (seq,
    type, ts, schema version: jsonb re-formats payload text), False if its seqs are not there, None
    if the store cannot tell now."""
    first = int(rows.events[0][1])
    try:
        stored = await asyncio.wait_for(
            store.read_events(rows.shard_id, first - 1, len(rows.events)), timeout_s
        )
    except Exception:
        return None
    if not stored:
        return False
    return [tuple(r[:4]) for r in stored] == [event_row(e)[:4] for e in rows.events]
