"""The shard service: one (region, commodity) book around the pure :class:`actors.core.engine.ShardEngine`,
over any :class:`persistence.store.EventStore` and risk decider. No Ray here (the Ray actor in
``actors/shard_actor.py`` is a thin wrapper), so it runs in unit tests on the in-memory store.

Batches are matched strictly one at a time, in arrival order (an ``asyncio.Lock``). Per
:meth:`ShardService.submit`: each command is checked against what the store can take (a failing one
is rejected alone, ``UNSTORABLE_VALUE``); plan, risk, execute; unused credit given back; the rows
appended atomically. Commits are chained (batch N+1 is sent only after batch N committed); with
``sync`` durability results are returned only after their commit.

A failed commit: that batch and every batch matched after it raise :class:`ShardUnavailable`, their
credit is given back, and the one recovery routine rolls the engine back from memory (a
committed-state shadow with ``shadow=True``, else the snapshot + rows checkpoint), then applies any
later events in the store: never the whole log. An unclear error is resolved by reading the batch's
seqs back; if the store cannot tell, :class:`CommitUnknown` ("outcome unknown: retry with the same
client_order_id"). Recovery applies events; it never re-runs matching or risk. Costs and the full
contract: docs/contracts.md, "Runtime".

Snapshots: with ``snapshot_mode="background"`` (the default) the shard takes none in its batches;
the runtime's snapshot builder (``actors/snapshot_builder.py``) writes them from the committed log,
and the shard now and then reads the latest one back (off the matching path) to move its rollback
checkpoint and ``last_snapshot_seq`` forward. ``inline`` keeps the former path: an engine snapshot
in the batch every ``snapshot_every`` events. :meth:`ShardService.snapshot_now` (drain, handover,
shutdown) snapshots in either mode (actors/shard_snapshots.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from actors.core.commands import SetMarketReference
from actors.core.engine import ShardEngine
from actors.core.ids import shard_id_for
from actors.core.risk.types import RiskRequest
from actors.risk_link import (
    DeciderSpec,
    decide_in_loop,
    give_back,
    make_decider,
    release,
    released_credit,
    settle,
)
from actors.shard_commits import Batch, CommitMixin
from actors.shard_outcomes import (
    ShardDraining,
    ShardUnavailable,
    merge_refused,
)
from actors.shard_recovery import Checkpoint, CommittedShadow, apply_rows, engine_from_state
from actors.shard_snapshots import SnapshotMixin
from persistence.event_store import batch_rows
from persistence.storable import command_problem
from persistence.store import EventStore

log = logging.getLogger(__name__)

QUERY_METHODS = frozenset(
    {"best_bid_ask", "depth", "open_orders", "get_order", "search", "stats", "market_status"}
)


class ShardService(SnapshotMixin, CommitMixin):
    """One shard. ``store``: an :class:`~persistence.store.EventStore`; ``decider``: a risk decider or
    factory (None = pass-all); ``durability``: ``sync`` | ``async``; ``snapshot_every``: events
    between snapshots (0 = never); ``memory_tail``: most committed events kept in memory for rollback
    (beyond it recovery reads the store); ``shadow``: keep a committed-state engine for O(1)
    rollback (see the module docstring); ``recovery_page``: events per store read;
    ``market_reference``: ``(price paise/kg, source, as_of)`` the shard records as its market
    reference (a MARKET_REFERENCE event before the first batch that finds it different);
    ``snapshot_mode``: ``background`` (snapshots come from the builder; every ``snapshot_every // 2``
    committed events, else ``memory_tail // 4``, the shard reads the store's latest one) or
    ``inline`` (an engine snapshot in the batch every ``snapshot_every`` events; 0 = never)."""

    def __init__(
        self,
        region: str,
        commodity: str,
        store: EventStore,
        decider: DeciderSpec = None,
        *,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        profile: str | None = None,
        recovery_page: int = 20_000,
        memory_tail: int = 200_000,
        shadow: bool = False,
        node_id: str | None = None,
        market_reference: tuple[int, str, str] | None = None,
        circuit_breaker: bool = True,
        snapshot_mode: str = "background",
    ) -> None:
        if durability not in ("sync", "async"):
            raise ValueError(f"durability must be sync or async, not {durability!r}")
        if snapshot_mode not in ("background", "inline"):
            raise ValueError(f"snapshot_mode must be background or inline, not {snapshot_mode!r}")
        self.region, self.commodity = region, commodity
        self.shard_id = shard_id_for(region, commodity)
        self.store = store
        self.decider = make_decider(decider)
        self.durability = durability
        self.snapshot_every = int(snapshot_every)
        self.snapshot_mode = snapshot_mode
        self._learn_step = max(1, self.snapshot_every // 2 if self.snapshot_every > 0 else memory_tail // 4)
        self._learn_at = 0  # committed seq from which to look for a newer stored snapshot
        self._learning = False
        self.profile = profile
        self.recovery_page = recovery_page
        self.memory_tail = memory_tail
        self.node_id = node_id
        self.market_reference = market_reference
        self.circuit_breaker = circuit_breaker
        self.engine: ShardEngine | None = None
        self.committed_seq = 0
        self.last_snapshot_seq = 0
        self.draining = False
        self.in_flight = 0
        self.counters = dict.fromkeys(
            (
                "batches",
                "commands",
                "commits",
                "failures",
                "unknown",
                "unstorable",
                "recoveries",
                "recovered_events",
            ),
            0,
        )
        self.secs = dict.fromkeys(("match_s", "rows_s", "commit_s", "recovery_s"), 0.0)
        self.recovery_source = ""
        self._lock: asyncio.Lock | None = None
        self._last: asyncio.Future[bool] | None = None  # commit outcome of the last matched batch
        self._checkpoint: Checkpoint | None = None
        self._unknown: list[Batch] = []
        self._queue: list[Batch] = []  # matched batches waiting for the committer (shard_commits.py)
        self._committer: asyncio.Task[None] | None = None
        self._broken_epoch: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty = True
        self.shadow = CommittedShadow(self._engine_from, self.shard_id) if shadow else None

    # -- recovery -----------------------------------------------------------------------------
    async def start(self, wait_s: float = 30.0) -> bool:
        """Recover before taking commands, retrying for ``wait_s`` while the store is down; False
        when it still fails (the next call then retries)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                await self._recover()
                return True
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.warning("shard %s: recovery failed, will retry on next call: %s", self.shard_id, exc)
                    return False
                await asyncio.sleep(0.5)

    async def _recover(self) -> None:
        """The one recovery routine: base state + later events. Waits for in-flight commits first."""
        if self._last is not None:
            await asyncio.shield(self._last)
        t0 = time.perf_counter()
        cp = self._checkpoint
        engine = None
        if self.shadow is not None and self.engine is not None and not self._unknown:
            engine = self.shadow.take(self.committed_seq)  # O(1) undo of the failed batches
        if engine is not None:
            seq, applied, self.recovery_source = self.committed_seq, 0, "shadow"
        else:
            if cp is None:
                snap = await self.store.latest_snapshot(self.shard_id)
                cp = Checkpoint(0, None) if snap is None else Checkpoint(snap[0], snap[1])
                self.recovery_source = "store"
            else:
                self.recovery_source = "memory"
            engine = self._engine_from(cp.state)
            seq = apply_rows(engine, cp.seq, cp.rows, self.shard_id)
            applied = len(cp.rows)
        while True:
            rows = await self.store.read_events(self.shard_id, seq, self.recovery_page)
            seq = apply_rows(engine, seq, rows, self.shard_id)
            applied += len(rows)
            if cp is not None:
                cp.rows.extend(rows)
            if len(rows) < self.recovery_page:
                break
        self._checkpoint = cp if cp is not None and len(cp.rows) <= self.memory_tail else None
        self.engine, self.committed_seq, self._last, self._dirty = engine, seq, None, False
        self.last_snapshot_seq = cp.seq if cp is not None else self.last_snapshot_seq
        self._learn_at = seq + self._learn_step
        if self.shadow is not None:
            self.shadow.rebuild(lambda: self._checkpoint)
        self._settle_unknown(seq)
        self.counters["recoveries"] += 1
        self.counters["recovered_events"] = applied
        self.secs["recovery_s"] = time.perf_counter() - t0
        log.info(
            "shard %s recovered to seq %d (%s, %d events)", self.shard_id, seq, self.recovery_source, applied
        )

    def _engine_from(self, state: str | bytes | None) -> ShardEngine:
        return engine_from_state(state, self.region, self.commodity, self.profile)

    def _reference_command(self, engine: ShardEngine) -> SetMarketReference | None:
        """The command recording :attr:`market_reference` when the engine has another one."""
        want = self.market_reference
        if want is None:
            return None
        ref = engine.reference
        if ref is not None and (ref["price"], ref["source"], ref["as_of"]) == want:
            return None
        return SetMarketReference(int(time.time() * 1000), *want)

    def _settle_unknown(self, seq: int) -> None:
        """Batches whose outcome was unknown: recovery saw the store, so now it is known."""
        for b in self._unknown:
            if seq >= b.rows.last_seq:
                release(self.decider, b.freed)
            else:
                give_back(self.decider, b.used)
        self._unknown = []

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _ready(self) -> ShardEngine:
        """The engine, recovered first when needed (call under the lock)."""
        if self._dirty or self.engine is None:
            try:
                await self._recover()
            except Exception as exc:
                raise ShardUnavailable(f"shard {self.shard_id} cannot recover: {exc}") from exc
        assert self.engine is not None
        return self.engine

    # -- commands -----------------------------------------------------------------------------
    async def submit(self, commands: Sequence[object]) -> list[dict[str, Any]]:
        """Process one batch; one result dict per command, in order. Raises :class:`ShardDraining`,
        :class:`ShardUnavailable` (nothing acknowledged) or :class:`CommitUnknown` (sync durability)."""
        if self.draining:
            raise ShardDraining(f"shard {self.shard_id} is draining")
        self.in_flight += 1
        try:
            return await self._submit(list(commands))
        finally:
            self.in_flight -= 1

    async def _submit(self, commands: Sequence[object]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        async with self._get_lock():
            if self.draining:
                raise ShardDraining(f"shard {self.shard_id} is draining")
            engine = await self._ready()
            t0 = time.perf_counter()
            refused = {i: p for i, c in enumerate(commands) if (p := command_problem(c)) is not None}
            good = [c for i, c in enumerate(commands) if i not in refused] if refused else commands
            reference = self._reference_command(engine)
            if reference is not None:
                good = [reference, *good]
            await self._recall_results(engine, good)
            decider = self.decider
            request = engine.plan(good) if decider.needs_queries else RiskRequest()
            verdicts = await decide_in_loop(decider, request)
            engine.breaker_on = self.circuit_breaker
            result = engine.execute(good, verdicts)
            if reference is not None:
                result.results = result.results[1:]
            settle(decider, verdicts.credit_grants, result.credit_used)
            results = merge_refused(commands, refused, result.results)
            self.counters["batches"] += 1
            self.counters["commands"] += len(commands)
            self.counters["unstorable"] += len(refused)
            t1 = time.perf_counter()
            self.secs["match_s"] += t1 - t0
            if not result.events:
                return results
            done = loop.create_future()
            batch = Batch(
                batch_rows(self.shard_id, result.events),
                dict(result.credit_used),
                released_credit(result.events),
                done,
                self.counters["recoveries"],
                self._snapshot_if_due(engine),
            )
            self.secs["rows_s"] += time.perf_counter() - t1
            self._last = done
            self._enqueue(batch)
        if self.durability == "sync":
            await self._outcome(batch)
        return results

    async def _recall_results(self, engine: ShardEngine, commands: Sequence[object]) -> None:
        """Bounded idempotency: once the engine has evicted results, the place commands it has
        forgotten are looked up in the ``client_orders`` projection in one query and their results
        handed back (:meth:`~actors.core.retention.Retention.result_lookups`, then
        ``remember_result``), so a retry of a long-closed order answers its original result.
        Eviction never outruns the projector (docs/contracts.md)."""
        lookup = getattr(self.store, "place_results", None)
        keys = engine.result_lookups(commands)
        if not keys or lookup is None:
            return
        try:
            found = await lookup(keys)
        except Exception as exc:  # answering a retry as a new order would place it twice
            raise ShardUnavailable(f"shard {self.shard_id}: idempotency lookup failed: {exc}") from exc
        for (party, coid), res in found.items():
            engine.remember_result(party, coid, res)

    def _after_commit(self, batch: Batch) -> None:
        """After a batch's commit: store its inline snapshot, or in background mode now and then
        read the builder's latest snapshot back (off the matching path)."""
        if batch.snap is not None:
            self._spawn(self._write_snapshot(*batch.snap))
        elif (
            self.snapshot_mode == "background" and self.committed_seq >= self._learn_at and not self._learning
        ):
            self._learning = True
            self._learn_at = self.committed_seq + self._learn_step
            self._spawn(self._learn_snapshot())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("shard %s: background snapshot task failed: %s", self.shard_id, task.exception())

    async def flush(self) -> int:
        """Wait for every in-flight commit and snapshot; return the committed seq."""
        if self._last is not None:
            await asyncio.shield(self._last)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        return self.committed_seq

    async def drain(self) -> dict[str, Any]:
        """Stop taking commands, flush commits, write a snapshot, mark DRAINED; return :meth:`info`."""
        self.draining = True
        await self.snapshot_now()
        await self.store.upsert_shard(self.shard_id, self.region, self.commodity, "DRAINED")
        return self.info()

    async def resume(self) -> dict[str, Any]:
        """Take commands again after :meth:`drain`; mark ACTIVE."""
        self.draining = False
        await self.store.upsert_shard(self.shard_id, self.region, self.commodity, "ACTIVE")
        return self.info()

    async def reload(self) -> int:
        """Rebuild the engine from the store now (latest snapshot + later events); return the seq."""
        async with self._get_lock():
            if self._last is not None:
                await asyncio.shield(self._last)
            self._checkpoint = None
            if self.shadow is not None:
                self.shadow.reset()
            await self._recover()
            return self.committed_seq

    # -- read side ----------------------------------------------------------------------------
    async def query(self, name: str, **kw: Any) -> Any:
        """Read-side call on the engine (see :data:`QUERY_METHODS`); raises ValueError for others."""
        if name not in QUERY_METHODS:
            raise ValueError(f"unknown query {name!r}")
        if self._dirty or self.engine is None:
            async with self._get_lock():
                await self._ready()
        return getattr(self.engine, name)(**kw)

    async def engine_snapshot(self) -> dict[str, Any]:
        """The engine's full state after every committed batch (JSON dict)."""
        async with self._get_lock():
            await self.flush()
            return (await self._ready()).snapshot()

    def info(self) -> dict[str, Any]:
        """Status: ids, ``node_id``, ``pid``, ``seq`` (engine), ``committed_seq``,
        ``last_snapshot_seq`` (the newest snapshot the shard knows of: its own, the one it recovered
        from or, in background mode, the builder's as last read, at most about ``snapshot_every // 2``
        events behind the store's), ``snapshot_mode``, ``book_size``,
        ``queue_depth`` (batches received and not yet answered), counters, stage seconds, and the
        market status (``halted``, ``halt_kind``, ``halt_reason``, ``halted_until`` epoch ms or None,
        ``price_band``; :meth:`actors.core.engine.ShardEngine.market_status`)."""
        eng = self.engine
        stats = eng.stats() if eng is not None else {}
        market = eng.market_status() if eng is not None else {}
        return {
            "shard_id": self.shard_id,
            "region": self.region,
            "commodity": self.commodity,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "seq": getattr(eng, "seq", None),
            "committed_seq": self.committed_seq,
            "last_snapshot_seq": self.last_snapshot_seq,
            "snapshot_mode": self.snapshot_mode,
            "book_size": stats.get("book_size"),
            "queue_depth": self.in_flight,
            "durability": self.durability,
            "draining": self.draining,
            "dirty": self._dirty,
            "recovery_source": self.recovery_source,
            **self.counters,
            **{k: round(v, 4) for k, v in self.secs.items()},
            **market,
        }
