"""The shard actor: a thin Ray shell around the pure :class:`actors.engine.ShardEngine`.

One named actor per (region, commodity): ``shard:<shard_id>``. It is synchronous (one command batch
at a time, so allocation is serial and needs no lock), ``max_restarts=-1`` and ``max_task_retries=0``
(a batch is never re-run behind the client's back; the client retries with the same client order
ids and gets the original results).

Per :meth:`ShardService.submit` call (one batch):

1. ``engine.plan`` lists the batch's candidate pairs; the risk decider answers them in one call;
   ``engine.execute`` allocates and returns results and events (no I/O in between).
2. The events and the projection rows (orders touched, allocations, proposals, reservations) go to the
   persistence actor as one :class:`persistence.event_store.BatchRows` = one PostgreSQL transaction.
3. Durability ``sync`` (default): results are returned only after that transaction committed. If it
   fails, ``submit`` raises, nothing is acknowledged, and the shard reloads its state from PostgreSQL
   (snapshot + later events) before the next batch, so memory never runs ahead of the log.
   Durability ``async``: results are returned before the commit; the commit of batch N overlaps the
   matching of batch N+1 (at most one batch in flight, so commits stay in seq order). A failed
   commit then loses already-acknowledged results: the shard reloads from PostgreSQL and the next
   ``submit`` raises. Use ``async`` only where that is acceptable (benchmarks, simulations).

On (re)start the actor loads the latest snapshot and applies every later event (recovery applies
events; it never re-runs matching or risk). Every ``snapshot_every`` events it saves a snapshot.
``drain`` stops taking commands, flushes, snapshots and marks the shard DRAINED.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import ray

from actors.events import Event
from actors.risk import PassAllDecider, RiskRequest
from persistence.event_store import batch_rows, decode_snapshot, encode_snapshot, order_ids_of

log = logging.getLogger(__name__)


QUERY_METHODS = frozenset({"best_bid_ask", "depth", "open_orders", "get_order", "search", "stats"})


class ShardDraining(RuntimeError):
    """The shard is drained and takes no commands."""


class ShardUnavailable(RuntimeError):
    """The shard could not commit or recover (PostgreSQL or the persistence actor is down)."""


def actor_name(shard_id: str) -> str:
    """Ray actor name of a shard."""
    return f"shard:{shard_id}"


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


def replay_events(engine: Any, rows: list[tuple[Any, ...]]) -> int:
    """Apply ``(seq, type, ts, schema_version, payload_json)`` rows to ``engine``; return the last seq."""
    last = 0
    for seq, typ, ts, sv, payload in rows:
        engine.apply(Event(int(seq), typ, int(ts), json.loads(payload), int(sv)))
        last = int(seq)
    return last


class ShardService:
    """Implementation of the shard actor.

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
        from actors.engine import shard_id_for

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
        self.in_batch = False
        self.batches = 0
        self.commands = 0
        self.failures = 0
        self.recoveries = 0
        self.recovery_s = 0.0
        self.recovered_events = 0
        self.match_s = 0.0  # cumulative seconds in plan + risk + execute
        self.rows_s = 0.0  # cumulative seconds building projection rows
        self.commit_s = 0.0  # cumulative seconds waiting for commits (sync)
        self._pending: Any = None  # async mode: ObjectRef of the in-flight append
        self._snapshot_thread: threading.Thread | None = None
        self._dirty = True
        self.started_at = time.time()
        deadline = time.monotonic() + recovery_wait_s
        while True:
            try:
                self._recover()
                break
            except Exception as exc:  # persistence down: retry, then let submit() retry later
                if time.monotonic() > deadline:
                    log.warning("shard %s: recovery failed, will retry on next batch: %s", self.shard_id, exc)
                    break
                time.sleep(0.5)

    # -- recovery -----------------------------------------------------------------------------
    def _recover(self) -> None:
        """Rebuild the engine from the latest snapshot plus every later committed event."""
        from actors.engine import ShardEngine

        t0 = time.perf_counter()
        snap = ray.get(self.persistence.latest_snapshot.remote(self.shard_id))
        if snap is not None:
            snap_seq, state = snap
            engine = ShardEngine.from_snapshot(decode_snapshot(state))
        else:
            snap_seq = 0
            engine = (
                ShardEngine(self.region, self.commodity, self.profile)
                if self.profile
                else ShardEngine(self.region, self.commodity)
            )
        seq = snap_seq
        applied = 0
        while True:
            rows = ray.get(self.persistence.read_events.remote(self.shard_id, seq, self.recovery_page))
            if not rows:
                break
            if int(rows[0][0]) != seq + 1:
                raise RuntimeError(f"event log gap in {self.shard_id}: expected {seq + 1}, got {rows[0][0]}")
            seq = replay_events(engine, rows)
            applied += len(rows)
            if len(rows) < self.recovery_page:
                break
        self.engine = engine
        self.committed_seq = seq
        self.last_snapshot_seq = snap_seq
        self._pending = None
        self._dirty = False
        self.recoveries += 1
        self.recovered_events = applied
        self.recovery_s = time.perf_counter() - t0
        log.info(
            "shard %s recovered to seq %d (%d events) in %.3fs", self.shard_id, seq, applied, self.recovery_s
        )

    # -- commands -----------------------------------------------------------------------------
    def submit(self, commands: list[Any]) -> list[dict[str, Any]]:
        """Process one batch of commands; return one result dict per command, in order.

        Sync durability: returns only after the batch's events are committed; raises
        :class:`ShardUnavailable` (nothing acknowledged) when they could not be.
        Raises :class:`ShardDraining` when the shard is drained.
        """
        if self.draining:
            raise ShardDraining(f"shard {self.shard_id} is draining")
        self.in_batch = True
        try:
            return self._submit(list(commands))
        finally:
            self.in_batch = False

    def _submit(self, commands: list[Any]) -> list[dict[str, Any]]:
        if self.durability == "async":
            self._wait_pending()
        if self._dirty:
            try:
                self._recover()
            except Exception as exc:
                raise ShardUnavailable(f"shard {self.shard_id} cannot recover: {exc}") from exc
        engine = self.engine
        t0 = time.perf_counter()
        if getattr(self.decider, "needs_queries", True):
            verdicts = self.decider.decide(engine.plan(commands))
        else:
            verdicts = self.decider.decide(RiskRequest())
        result = engine.execute(commands, verdicts)
        settle = getattr(self.decider, "settle", None)
        if settle is not None:
            try:
                settle(verdicts.credit_grants, result.credit_used)
            except Exception as exc:
                log.warning("shard %s: credit settle failed: %s", self.shard_id, exc)
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
        docs = []
        for oid in touched:
            d = engine.get_order(oid)
            if d is not None:
                docs.append(d if isinstance(d, dict) else d.to_dict())
        rows = batch_rows(self.shard_id, events, docs)
        t2 = time.perf_counter()
        self.rows_s += t2 - t1
        ref = self.persistence.append.remote(rows)
        if self.durability == "sync":
            try:
                ray.get(ref)
                self.commit_s += time.perf_counter() - t2
            except Exception as exc:
                self.failures += 1
                self._dirty = True
                raise ShardUnavailable(
                    f"shard {self.shard_id}: commit failed, batch not acknowledged: {exc}"
                ) from exc
            self.committed_seq = rows.last_seq
            self._maybe_snapshot()
        else:
            self._pending = (ref, rows.last_seq)
        return result.results

    def _wait_pending(self) -> None:
        if self._pending is None:
            return
        ref, last = self._pending
        self._pending = None
        try:
            ray.get(ref)
        except Exception as exc:
            self.failures += 1
            self._dirty = True
            raise ShardUnavailable(
                f"shard {self.shard_id}: an acknowledged async batch failed: {exc}"
            ) from exc
        self.committed_seq = last
        self._maybe_snapshot()

    def _maybe_snapshot(self, force: bool = False) -> None:
        if self.committed_seq <= self.last_snapshot_seq:
            return
        due = self.snapshot_every > 0 and (
            self.committed_seq // self.snapshot_every > self.last_snapshot_seq // self.snapshot_every
        )
        if not (due or force):
            return
        self._join_snapshot()
        snap = self.engine.snapshot()  # consistent copy, taken between batches
        seq = self.last_snapshot_seq = self.committed_seq
        if force:
            self._write_snapshot(seq, snap, raise_errors=True)
        else:  # encode + store off the command path
            self._snapshot_thread = threading.Thread(
                target=self._write_snapshot, args=(seq, snap), name=f"snapshot-{self.shard_id}", daemon=True
            )
            self._snapshot_thread.start()

    def _write_snapshot(self, seq: int, snap: dict[str, Any], raise_errors: bool = False) -> None:
        try:
            ray.get(self.persistence.save_snapshot.remote(self.shard_id, seq, encode_snapshot(snap)))
        except Exception as exc:  # a missed snapshot only makes the next recovery longer
            if raise_errors:
                raise
            log.warning("shard %s: snapshot at %d failed: %s", self.shard_id, seq, exc)

    def _join_snapshot(self) -> None:
        t = self._snapshot_thread
        if t is not None:
            t.join()
            self._snapshot_thread = None

    def flush(self) -> int:
        """Wait for in-flight commits (async mode) and snapshots; return the committed seq."""
        self._wait_pending()
        self._join_snapshot()
        return self.committed_seq

    def snapshot_now(self) -> int:
        """Write a snapshot at the committed seq now; return that seq."""
        self.flush()
        if self._dirty:
            self._recover()
        self._maybe_snapshot(force=True)
        return self.last_snapshot_seq

    def drain(self) -> dict[str, Any]:
        """Stop taking commands, flush commits, write a snapshot; return :meth:`info`."""
        self.draining = True
        self.snapshot_now()
        ray.get(self.persistence.upsert_shard.remote(self.shard_id, self.region, self.commodity, "DRAINED"))
        return self.info()

    def resume(self) -> dict[str, Any]:
        """Take commands again after :meth:`drain`."""
        self.draining = False
        ray.get(self.persistence.upsert_shard.remote(self.shard_id, self.region, self.commodity, "ACTIVE"))
        return self.info()

    def reload(self) -> int:
        """Rebuild the engine from PostgreSQL now (snapshot + later events); return the seq."""
        self.flush()
        self._recover()
        return self.committed_seq

    # -- read side ----------------------------------------------------------------------------
    def query(self, name: str, **kw: Any) -> Any:
        """Read-side call on the engine: ``best_bid_ask``, ``depth``, ``open_orders``, ``get_order``,
        ``search``, ``stats``. Serialised with ``submit`` (consistent view)."""
        if name not in QUERY_METHODS:
            raise ValueError(f"unknown query {name!r}")
        if self._dirty:
            self._recover()
        return getattr(self.engine, name)(**kw)

    def engine_snapshot(self) -> dict[str, Any]:
        """The engine's full state (JSON dict), for checks and moves."""
        if self._dirty:
            self._recover()
        return self.engine.snapshot()

    def info(self) -> dict[str, Any]:
        """Shard status: ``shard_id``, ``node_id``, ``seq`` (engine), ``committed_seq``, ``book_size``
        (resting orders), ``draining``, ``in_batch``, counters and last recovery time (s). Runs in its
        own thread group so it answers while a batch is running."""
        book_size = None
        eng = self.engine
        if eng is not None:
            try:
                st = eng.stats()
                book_size = st.get("book_size", st.get("open_orders")) if isinstance(st, dict) else None
            except Exception:
                book_size = None
        return {
            "shard_id": self.shard_id,
            "region": self.region,
            "commodity": self.commodity,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": __import__("os").getpid(),
            "seq": getattr(eng, "seq", None),
            "committed_seq": self.committed_seq,
            "last_snapshot_seq": self.last_snapshot_seq,
            "book_size": book_size,
            "durability": self.durability,
            "draining": self.draining,
            "in_batch": self.in_batch,
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


@ray.remote(max_restarts=-1, max_task_retries=0, concurrency_groups={"ctl": 1})  # type: ignore[call-overload]
class ShardActor(ShardService):
    """The Ray actor: :class:`ShardService` with ``info`` in its own thread group ``ctl``."""

    @ray.method(concurrency_group="ctl")
    def info(self) -> dict[str, Any]:  # type: ignore[override]
        return ShardService.info(self)


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
    """Create (or get, if it exists) the named shard actor ``shard:<region>.<commodity>``."""
    from actors.engine import shard_id_for

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
    return ShardActor.options(**opts).remote(  # type: ignore[attr-defined]
        region, commodity, persistence, durability, snapshot_every, decider, profile
    )
