"""Group commit of a shard's batches, the part of :class:`actors.shard_service.ShardService` that
writes matched batches to the event store (docs/contracts.md, "Runtime").

Matched batches queue in order. One committer task writes them: everything queued when it starts a
transaction (up to :data:`GROUP_MAX_EVENTS` events) goes into that one transaction, so the batches
matched while a commit is in flight share the next one (group commit: one fence check, one COPY, one
COMMIT and one WAL flush for all of them). Measured on this project's PostgreSQL: a transaction of
1,000 events took 6.2 ms and one of 3,000 took 11.2 ms (about 3.7 ms of it fixed per transaction);
see the issue note of the journal-first write path.

Outcomes are per batch, as before grouping: a batch's ``done`` future resolves True once its
transaction committed, False otherwise, and ``batch.error`` then holds what the batch's caller
raises (:class:`~actors.shard_outcomes.ShardUnavailable`: nothing of it is written;
:class:`~actors.shard_outcomes.CommitUnknown`: the store cannot tell). A failed or unclear
transaction fails every batch in it and every batch queued behind it (they were matched on top of
state that is not in the store); the shard recovers before its next batch. A batch the store could
not take (:func:`persistence.storable.rows_problem`) is never sent: the batches before it are
written, it and those after it fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from actors.risk_link import give_back, release
from actors.shard_outcomes import CommitUnknown, ShardUnavailable
from actors.shard_recovery import CommittedShadow, batch_in_store
from persistence.event_store import BatchRows, event_row
from persistence.storable import rows_problem
from persistence.store import CommitFailed

if TYPE_CHECKING:
    from actors.core.risk.types import RiskDecider
    from actors.shard_recovery import Checkpoint
    from persistence.store import EventStore

log = logging.getLogger("actors.shard_service")

#: Most events in one group transaction (a group holds at least one batch, however large).
GROUP_MAX_EVENTS = 20_000


@dataclass(slots=True)
class Batch:
    """One matched batch on its way to the store: its rows, the credit it used and the reservations it
    released (paise per buyer), an inline snapshot to store after it, the shard's recovery count when
    it was matched (``epoch``), its commit outcome (``done``) and, on failure, the error its caller
    raises."""

    rows: BatchRows
    used: dict[str, int]
    freed: dict[str, int]
    done: asyncio.Future[bool]
    epoch: int
    snap: tuple[int, dict[str, Any]] | None = None
    error: Exception | None = None


class CommitMixin:
    """Group-commit methods of :class:`actors.shard_service.ShardService` (it provides the state
    below)."""

    shard_id: str
    store: EventStore
    decider: RiskDecider
    counters: dict[str, int]
    secs: dict[str, float]
    committed_seq: int
    memory_tail: int
    shadow: CommittedShadow | None
    _checkpoint: Checkpoint | None
    _dirty: bool
    _unknown: list[Batch]
    _queue: list[Batch]
    _committer: asyncio.Task[None] | None
    _broken_epoch: int | None
    durability: str

    def _enqueue(self, batch: Batch) -> None:
        """Queue a matched batch for the committer (started when idle). Call in matching order."""
        self._queue.append(batch)
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())

    async def _outcome(self, batch: Batch) -> None:
        """Wait for ``batch``'s commit; raise its error when it was not committed. A cancelled waiter
        leaves the commit running."""
        if not await asyncio.shield(batch.done):
            assert batch.error is not None
            raise batch.error

    async def _commit_loop(self) -> None:
        group: list[Batch] = []
        try:
            while self._queue:
                group = self._take_group()
                await self._write_group(group)
        finally:
            self._committer = None
            # cancelled mid-way (shutdown): the outcome is unknown; never leave a waiter hanging
            for b in [*group, *self._queue]:
                if not b.done.done():
                    self._unclear(b, "commit interrupted")
            self._queue = []

    def _take_group(self) -> list[Batch]:
        group = [self._queue[0]]
        n = len(group[0].rows.events)
        for b in self._queue[1:]:
            n += len(b.rows.events)
            if n > GROUP_MAX_EVENTS:
                break
            group.append(b)
        del self._queue[: len(group)]
        return group

    async def _write_group(self, group: list[Batch]) -> None:
        if group[0].epoch == self._broken_epoch:
            for b in group:
                self._failed(b, "an earlier batch failed to commit")
            return
        good, problem = group, None
        for i, b in enumerate(group):
            if (problem := rows_problem(b.rows)) is not None:
                good = group[:i]
                break
        written = await self._append(good) if good else True
        for b in group[len(good) :]:
            self._failed(b, f"batch not storable: {problem}" if written else "an earlier batch failed")

    async def _append(self, group: list[Batch]) -> bool:
        """Write ``group`` in one transaction; True when it committed (its batches are then done)."""
        t = time.perf_counter()
        if len(group) == 1:
            rows = group[0].rows
        else:
            rows = BatchRows(
                self.shard_id, [e for b in group for e in b.rows.events], group[-1].rows.last_seq
            )
        try:
            await self.store.append(rows)
        except CommitFailed as exc:
            for b in group:
                self._failed(b, str(exc))
            return False
        except Exception as exc:
            committed = await batch_in_store(self.store, rows)
            if committed is None:
                for b in group:
                    self._unclear(b, type(exc).__name__)
                return False
            if not committed:
                for b in group:
                    self._failed(b, f"{type(exc).__name__}: {exc}")
                return False
        self.secs["commit_s"] += time.perf_counter() - t
        self.counters["commits"] += 1
        self.committed_seq = max(self.committed_seq, rows.last_seq)
        keep = self._checkpoint is not None or self.shadow is not None
        new_rows = [event_row(e) for e in rows.events] if keep else []
        cp = self._checkpoint
        if cp is not None:
            cp.rows.extend(new_rows)
            if len(cp.rows) > self.memory_tail:
                self._checkpoint = None
        if self.shadow is not None:
            self.shadow.advance(new_rows)
        for b in group:
            release(self.decider, b.freed)
            b.done.set_result(True)
            self._after_commit(b)
        return True

    def _failed(self, batch: Batch, why: str) -> None:
        """A batch definitely not written: give its credit back, roll back before the next batch."""
        self.counters["failures"] += 1
        give_back(self.decider, batch.used)
        self._dirty = True
        self._broken_epoch = batch.epoch
        batch.error = ShardUnavailable(f"shard {self.shard_id}: commit failed, nothing acknowledged: {why}")
        self._resolve(batch, False)

    def _unclear(self, batch: Batch, why: str) -> None:
        """A batch whose commit outcome the store cannot tell now: settled by the next recovery."""
        self.counters["unknown"] += 1
        self._unknown.append(batch)
        self._dirty = True
        self._broken_epoch = batch.epoch
        batch.error = CommitUnknown(f"shard {self.shard_id}: {why}")
        self._resolve(batch, False)

    def _resolve(self, batch: Batch, ok: bool) -> None:
        batch.done.set_result(ok)
        if not ok and self.durability == "async":  # nobody waits for it: say so
            log.warning("shard %s: background commit failed: %s", self.shard_id, batch.error)

    def _after_commit(self, batch: Batch) -> None:
        """What follows a batch's commit (a snapshot to store or learn); the shard provides it."""
        raise NotImplementedError
