"""The shard actor: a thin Ray shell around the pure :class:`actors.core.engine.ShardEngine`.

One named actor per (region, commodity): ``shard:<shard_id>``, ``max_restarts=-1`` and
``max_task_retries=0`` (a batch is never re-run behind the client's back; the client retries with the
same client order ids and gets the original results).

Batches are matched strictly one at a time, in arrival order (an ``asyncio.Lock`` around a section
with no ``await`` inside, so allocation is serial and needs no other lock). Per :meth:`submit` call:

1. ``engine.plan`` lists the batch's candidate pairs; the risk decider answers them in one call;
   ``engine.execute`` allocates and returns results and events (no I/O in between).
2. The events and the projection rows (orders touched, allocations, proposals, reservations) go to the
   persistence actor as one :class:`persistence.event_store.BatchRows` = one PostgreSQL transaction.
   Commits are chained: batch N+1 is sent only after batch N committed, so the log has no gaps.
3. Durability ``sync`` (default): the results are returned only after that transaction committed.
   While batch N commits, batch N+1 is already being matched (pipelining); its results still wait for
   its own commit. If a commit fails, ``submit`` raises :class:`ShardUnavailable` for that batch and
   every batch matched after it (nothing of them is acknowledged) and the shard reloads its state from
   PostgreSQL (snapshot + later events) before matching again, so memory never runs ahead of the log.
   Durability ``async``: results are returned as soon as the batch is matched; the commit follows in
   the background. A failed commit then loses already-acknowledged results: the shard reloads from
   PostgreSQL. Use ``async`` only where that is acceptable (benchmarks, simulations).

Reads (:meth:`query`) see the book after the last matched batch, which may include batches whose
commit (and acknowledgement) is still in flight.

On (re)start the actor loads the latest snapshot and applies every later event before it takes
commands (recovery applies events; it never re-runs matching or risk). Every ``snapshot_every``
events it saves a snapshot (taken between batches, encoded off the command path, written only after
the batches it contains committed). ``drain`` stops taking commands, flushes, snapshots and marks the
shard DRAINED.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import ray

from actors.core.events import event_from_row
from actors.core.ids import shard_actor_name
from actors.core.risk.types import PassAllDecider, RiskRequest, RiskVerdicts
from persistence.event_store import batch_rows, decode_snapshot, encode_snapshot, order_ids_of

log = logging.getLogger(__name__)

QUERY_METHODS = frozenset({"best_bid_ask", "depth", "open_orders", "get_order", "search", "stats"})


class ShardDraining(RuntimeError):
    """The shard is drained and takes no commands."""


class ShardUnavailable(RuntimeError):
    """The batch was not committed (PostgreSQL or the persistence actor is down): nothing of it is
    acknowledged; retry with the same client order ids."""


actor_name = shard_actor_name


def make_decider(decider: Any) -> Any:
    """A risk decider from ``decider``: None -> :class:`PassAllDecider`; an object with ``decide`` is
    used as is; any other callable is a factory called with no arguments."""
    if decider is None:
        return PassAllDecider()
    if hasattr(decider, "decide"):
        return decider
    if callable(decider):
        return decider()
    raise TypeError(f"not a risk decider or factory: {decider!r}")


async def decide_in_loop(decider: Any, request: RiskRequest) -> RiskVerdicts:
    """Ask ``decider`` about a batch from inside the actor's event loop.

    A decider with ``decide_async``/``verdicts`` (the Ray Serve risk pool client) is awaited: a
    blocking ``.result()`` is not allowed inside an event loop. It fails closed like the client's own
    ``decide``: on timeout or error no pair gets a decision and every credit grant is 0."""
    send = getattr(decider, "decide_async", None)
    if send is None or not hasattr(decider, "verdicts"):
        result: RiskVerdicts = decider.decide(request)
        return result
    if not request.queries and not request.credit_requests:
        return RiskVerdicts()
    try:
        reply = await asyncio.wait_for(send(request), timeout=getattr(decider, "timeout_s", 5.0))
    except Exception as exc:
        decider.failures = getattr(decider, "failures", 0) + 1
        log.warning("risk pool unavailable, failing closed: %s: %s", type(exc).__name__, exc)
        return RiskVerdicts(credit_grants={b: 0 for b in request.credit_requests})
    verdicts: RiskVerdicts = decider.verdicts(request, reply)
    return verdicts


def replay_events(engine: Any, rows: list[tuple[Any, ...]]) -> int:
    """Apply ``(seq, type, ts, schema_version, payload_json)`` rows to ``engine``; return the last seq."""
    last = 0
    for seq, typ, ts, sv, payload in rows:
        engine.apply(event_from_row(seq, typ, ts, sv, payload))
        last = int(seq)
    return last


class ShardService:
    """Implementation of the shard actor (an async Ray actor).

    ``persistence``: handle of the persistence actor. ``durability``: ``sync`` | ``async``.
    ``snapshot_every``: events between snapshots (0 = never). ``decider``: a risk decider or a
    picklable factory of one. ``recovery_page``: events fetched per read during recovery.
    """

    def __init__(
        self,
        region: str,
        commodity: str,
        persistence: Any,
        durability: str = "sync",
        snapshot_every: int = 100_000,
        decider: Any = None,
        profile: str | None = None,
        recovery_page: int = 20_000,
        recovery_wait_s: float = 30.0,
    ) -> None:
        from actors.core.ids import shard_id_for
        from actors.gc_tuning import tune_gc_for_matching

        tune_gc_for_matching()  # the actor process hosts one book: avoid long gen-2 pauses
        self.region = region
        self.commodity = commodity
        self.shard_id = shard_id_for(region, commodity)
        self.persistence = persistence
        if durability not in ("sync", "async"):
            raise ValueError(f"durability must be sync or async, not {durability!r}")
        self.durability = durability
        self.snapshot_every = int(snapshot_every)
        self.decider = make_decider(decider)
        self.profile = profile
        self.recovery_page = recovery_page
        self.engine: Any = None
        self.committed_seq = 0
        self.last_snapshot_seq = 0
        self.draining = False
        self.in_flight = 0  # batches matched or waiting to be matched, not yet answered
        self.batches = 0
        self.commands = 0
        self.failures = 0
        self.recoveries = 0
        self.recovery_s = 0.0
        self.recovered_events = 0
        self.match_s = 0.0  # cumulative seconds in plan + risk + execute
        self.rows_s = 0.0  # cumulative seconds building projection rows
        self.commit_s = 0.0  # cumulative seconds from sending a batch to its commit
        self._lock: asyncio.Lock | None = None
        self._tail: asyncio.Future[bool] | None = None  # commit outcome of the last matched batch
        self._snap_tasks: set[asyncio.Task[None]] = set()
        self._bg: set[asyncio.Task[None]] = set()
        self._dirty = True
        self.started_at = time.time()
        # Recover before taking commands (constructor: blocking calls are fine here).
        deadline = time.monotonic() + recovery_wait_s
        while True:
            try:
                snap = ray.get(self.persistence.latest_snapshot.remote(self.shard_id))
                engine, seq, t0 = self._engine_from(snap)
                while True:
                    rows = ray.get(
                        self.persistence.read_events.remote(self.shard_id, seq, self.recovery_page)
                    )
                    seq = self._apply_page(engine, seq, rows)
                    if len(rows) < self.recovery_page:
                        break
                self._recovered(engine, snap, seq, t0)
                break
            except Exception as exc:  # persistence down: retry, then let submit() retry later
                if time.monotonic() > deadline:
                    log.warning("shard %s: recovery failed, will retry on next batch: %s", self.shard_id, exc)
                    break
                time.sleep(0.5)

    # -- recovery -----------------------------------------------------------------------------
    def _engine_from(self, snap: Any) -> tuple[Any, int, float]:
        from actors.core.engine import ShardEngine

        t0 = time.perf_counter()
        self.recovered_events = 0
        if snap is not None:
            return ShardEngine.from_snapshot(decode_snapshot(snap[1])), int(snap[0]), t0
        if self.profile:
            return ShardEngine(self.region, self.commodity, self.profile), 0, t0
        return ShardEngine(self.region, self.commodity), 0, t0

    def _apply_page(self, engine: Any, seq: int, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return seq
        if int(rows[0][0]) != seq + 1:
            raise RuntimeError(f"event log gap in {self.shard_id}: expected {seq + 1}, got {rows[0][0]}")
        self.recovered_events += len(rows)
        return replay_events(engine, rows)

    def _recovered(self, engine: Any, snap: Any, seq: int, t0: float) -> None:
        self.engine = engine
        self.committed_seq = seq
        self.last_snapshot_seq = int(snap[0]) if snap is not None else 0
        self._tail = None
        self._dirty = False
        self.recoveries += 1
        self.recovery_s = time.perf_counter() - t0
        log.info("shard %s recovered to seq %d (%d events)", self.shard_id, seq, self.recovered_events)

    async def _recover(self) -> None:
        """Rebuild the engine from the latest snapshot plus every later committed event. Waits for
        every in-flight commit to settle first, so it reads the final log."""
        tail = self._tail
        if tail is not None:
            await asyncio.shield(tail)
        snap = await self.persistence.latest_snapshot.remote(self.shard_id)
        engine, seq, t0 = self._engine_from(snap)
        while True:
            rows = await self.persistence.read_events.remote(self.shard_id, seq, self.recovery_page)
            seq = self._apply_page(engine, seq, rows)
            if len(rows) < self.recovery_page:
                break
        self._recovered(engine, snap, seq, t0)

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # -- commands -----------------------------------------------------------------------------
    async def submit(self, commands: list[Any]) -> list[dict[str, Any]]:
        """Process one batch of commands; return one result dict per command, in order.

        Sync durability: returns only after the batch's events are committed; raises
        :class:`ShardUnavailable` (nothing acknowledged) when they could not be.
        Raises :class:`ShardDraining` when the shard is drained.
        """
        if self.draining:
            raise ShardDraining(f"shard {self.shard_id} is draining")
        self.in_flight += 1
        try:
            return await self._submit(list(commands))
        finally:
            self.in_flight -= 1

    async def _submit(self, commands: list[Any]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        async with self._get_lock():
            if self.draining:
                raise ShardDraining(f"shard {self.shard_id} is draining")
            if self._dirty:
                try:
                    await self._recover()
                except Exception as exc:
                    raise ShardUnavailable(f"shard {self.shard_id} cannot recover: {exc}") from exc
            # ---- serial section: no await from here to the end of the block ----
            engine = self.engine
            t0 = time.perf_counter()
            decider = self.decider
            request = engine.plan(commands) if getattr(decider, "needs_queries", True) else RiskRequest()
            verdicts = await decide_in_loop(decider, request)
            result = engine.execute(commands, verdicts)
            settle = getattr(decider, "settle", None)
            if settle is not None:
                try:
                    settle(verdicts.credit_grants, result.credit_used)
                except Exception as exc:
                    log.warning("shard %s: credit settle failed: %s", self.shard_id, exc)
            release = getattr(decider, "release", None)
            if release is not None:
                freed: dict[str, int] = {}
                for e in result.events:
                    if e.type == "RELEASED":  # reserved notional returns to the buyer's credit
                        p = e.payload
                        freed[p.buyer_id] = freed.get(p.buyer_id, 0) + p.quantity_kg * p.price
                if freed:
                    try:
                        release(freed)
                    except Exception as exc:
                        log.warning("shard %s: credit release failed: %s", self.shard_id, exc)
            self.batches += 1
            self.commands += len(commands)
            t1 = time.perf_counter()
            self.match_s += t1 - t0
            events = result.events
            if not events:
                return result.results
            touched: dict[str, None] = {}
            for e in events:
                for oid in order_ids_of(e):
                    touched[oid] = None
            docs = [d for d in map(engine.get_order, touched) if d is not None]
            rows = batch_rows(self.shard_id, events, docs)
            self.rows_s += time.perf_counter() - t1
            prev = self._tail
            done: asyncio.Future[bool] = loop.create_future()
            self._tail = done
            snap = self._snapshot_if_due(engine)
        commit = self._commit(rows, prev, done, snap)
        if self.durability == "sync":
            await commit
        else:
            task = loop.create_task(commit)
            self._bg.add(task)
            task.add_done_callback(self._bg_done)
        return result.results

    def _bg_done(self, task: asyncio.Task[None]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("shard %s: async commit failed: %s", self.shard_id, task.exception())

    async def _commit(
        self, rows: Any, prev: asyncio.Future[bool] | None, done: asyncio.Future[bool], snap: Any
    ) -> None:
        t = time.perf_counter()
        try:
            if prev is not None and not await asyncio.shield(prev):
                raise ShardUnavailable(f"shard {self.shard_id}: an earlier batch failed to commit")
            await self.persistence.append.remote(rows)
        except Exception as exc:
            self.failures += 1
            self._dirty = True
            done.set_result(False)
            if isinstance(exc, ShardUnavailable):
                raise
            raise ShardUnavailable(
                f"shard {self.shard_id}: commit failed, batch not acknowledged: {exc}"
            ) from exc
        self.commit_s += time.perf_counter() - t
        if rows.last_seq > self.committed_seq:
            self.committed_seq = rows.last_seq
        done.set_result(True)
        if snap is not None:
            self._start_snapshot_write(*snap)

    # -- snapshots ----------------------------------------------------------------------------
    def _snapshot_if_due(self, engine: Any, force: bool = False) -> tuple[int, dict[str, Any]] | None:
        """Take a snapshot dict now (between batches) when one is due; it is written after the batch
        that ends at ``engine.seq`` commits."""
        seq = int(engine.seq)
        if seq <= self.last_snapshot_seq:
            return None
        due = (
            self.snapshot_every > 0
            and seq // self.snapshot_every > self.last_snapshot_seq // self.snapshot_every
        )
        if not (due or force):
            return None
        self.last_snapshot_seq = seq
        return seq, engine.snapshot()

    def _start_snapshot_write(self, seq: int, snap: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._write_snapshot(seq, snap))
        self._snap_tasks.add(task)
        task.add_done_callback(self._snap_tasks.discard)

    async def _write_snapshot(self, seq: int, snap: dict[str, Any], raise_errors: bool = False) -> None:
        try:
            blob = await asyncio.to_thread(encode_snapshot, snap)
            await self.persistence.save_snapshot.remote(self.shard_id, seq, blob)
        except Exception as exc:  # a missed snapshot only makes the next recovery longer
            if raise_errors:
                raise
            log.warning("shard %s: snapshot at %d failed: %s", self.shard_id, seq, exc)

    async def flush(self) -> int:
        """Wait for every in-flight commit and snapshot; return the committed seq."""
        tail = self._tail
        if tail is not None:
            await asyncio.shield(tail)
        if self._snap_tasks:
            await asyncio.gather(*list(self._snap_tasks), return_exceptions=True)
        return self.committed_seq

    async def snapshot_now(self) -> int:
        """Write a snapshot at the committed seq now; return that seq."""
        async with self._get_lock():
            await self.flush()
            if self._dirty:
                await self._recover()
            snap = self._snapshot_if_due(self.engine, force=True)
            if snap is not None:
                await self._write_snapshot(*snap, raise_errors=True)
            return self.last_snapshot_seq

    async def drain(self) -> dict[str, Any]:
        """Stop taking commands, flush commits, write a snapshot; return :meth:`info`."""
        self.draining = True
        await self.snapshot_now()
        await self.persistence.upsert_shard.remote(self.shard_id, self.region, self.commodity, "DRAINED")
        return self.info()

    async def resume(self) -> dict[str, Any]:
        """Take commands again after :meth:`drain`."""
        self.draining = False
        await self.persistence.upsert_shard.remote(self.shard_id, self.region, self.commodity, "ACTIVE")
        return self.info()

    async def reload(self) -> int:
        """Rebuild the engine from PostgreSQL now (snapshot + later events); return the seq."""
        async with self._get_lock():
            await self._recover()
            return self.committed_seq

    # -- read side ----------------------------------------------------------------------------
    async def query(self, name: str, **kw: Any) -> Any:
        """Read-side call on the engine: ``best_bid_ask``, ``depth``, ``open_orders``, ``get_order``,
        ``search``, ``stats``. Runs between batches (consistent view)."""
        if name not in QUERY_METHODS:
            raise ValueError(f"unknown query {name!r}")
        if self._dirty:
            async with self._get_lock():
                if self._dirty:
                    await self._recover()
        return getattr(self.engine, name)(**kw)

    async def engine_snapshot(self) -> dict[str, Any]:
        """The engine's full state after every committed batch (JSON dict), for checks and moves."""
        async with self._get_lock():
            await self.flush()
            if self._dirty:
                await self._recover()
            snap: dict[str, Any] = self.engine.snapshot()
            return snap

    def info(self) -> dict[str, Any]:
        """Shard status: ``shard_id``, ``node_id``, ``seq`` (engine), ``committed_seq``, ``book_size``
        (resting orders), ``in_flight`` (batches received and not yet answered = queue depth),
        ``draining``, counters, cumulative stage seconds and the last recovery time (s)."""
        book_size = None
        eng = self.engine
        if eng is not None:
            try:
                st = eng.stats()
                book_size = st.get("book_size") if isinstance(st, dict) else None
            except Exception:
                book_size = None
        return {
            "shard_id": self.shard_id,
            "region": self.region,
            "commodity": self.commodity,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "seq": getattr(eng, "seq", None),
            "committed_seq": self.committed_seq,
            "last_snapshot_seq": self.last_snapshot_seq,
            "book_size": book_size,
            "queue_depth": self.in_flight,
            "durability": self.durability,
            "draining": self.draining,
            "dirty": self._dirty,
            "batches": self.batches,
            "commands": self.commands,
            "failures": self.failures,
            "recoveries": self.recoveries,
            "recovered_events": self.recovered_events,
            "recovery_s": round(self.recovery_s, 4),
            "match_s": round(self.match_s, 3),
            "rows_s": round(self.rows_s, 3),
            "commit_s": round(self.commit_s, 3),
        }


ShardActor = ray.remote(max_restarts=-1, max_task_retries=0)(ShardService)


MATCHING_RESOURCE = "tradedesk_matching"  # custom resource of the matching node type (cluster.yaml)


def matching_placement(cluster_resources: dict[str, float]) -> dict[str, Any]:
    """Actor options that pin a shard to matching nodes when the cluster has any, else nothing."""
    if cluster_resources.get(MATCHING_RESOURCE, 0) > 0:
        return {"resources": {MATCHING_RESOURCE: 1}}
    return {}


def create_shard_actor(
    region: str,
    commodity: str,
    persistence: Any,
    *,
    namespace: str | None = None,
    durability: str = "sync",
    snapshot_every: int = 100_000,
    decider: Any = None,
    profile: str | None = None,
    scheduling_strategy: Any = "SPREAD",
    detached: bool = False,
    num_cpus: float = 0,
) -> Any:
    """Create (or get, if it exists) the named shard actor ``shard:<region>.<commodity>``.

    When the cluster offers the custom resource :data:`MATCHING_RESOURCE` (the ``matching`` node type
    of ``cluster.yaml``), each shard asks for 1 unit of it, so shards land on matching nodes only
    (100 units per node = at most 100 shards per node); spread over them with ``scheduling_strategy``.
    """
    from actors.core.ids import shard_id_for

    opts: dict[str, Any] = {
        "name": actor_name(shard_id_for(region, commodity)),
        "get_if_exists": True,
        "num_cpus": num_cpus,
        "scheduling_strategy": scheduling_strategy,
    }
    if namespace:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    opts.update(matching_placement(ray.cluster_resources()))
    return ShardActor.options(**opts).remote(  # type: ignore[attr-defined]
        region, commodity, persistence, durability, snapshot_every, decider, profile
    )
