"""The settlement host: the post-trade kernel (:mod:`actors.core.posttrade`) over PostgreSQL and
the Redis exposure cache. No Ray here (``actors/settlement_actor.py`` is the thin Ray wrapper).

- Recovery (:meth:`SettlementService.start`): apply the settlement stream's committed events to a
  fresh engine (events, never decisions). The tailing checkpoint per shard is derived from that
  log: the highest ``source_seq`` a contract was opened from (:attr:`SettlementState.sources`).
- Tailing (:meth:`catch_up`): the shards' committed ALLOCATED/CONFIRMED events after the
  checkpoint become :class:`~actors.core.posttrade.engine.OpenContract` commands; the buyer
  requirement's quality ranges and the seller availability's location come from the orders
  projection (committed with the allocation). A contract opens once per allocation.
- Commands (deliver, pay, cancel, sweep) run strictly one at a time (an ``asyncio.Lock``); each
  one's events, ledger transfers and read models are committed in one transaction
  (:class:`persistence.settlement_store.PostgresSettlementStore`) before the answer. A failed
  commit rolls the engine back by replaying the log; an unclear one is resolved by the committed
  max seq. Hence an acknowledged delivery or payment is durable, and a retry (same delivery key,
  same payment_ref) returns the original result instead of applying it twice.
- Fan-out: committed events are published on ``td:events:settlement``, so a party follows its
  contract and invoice events on the WebSocket ``mine`` channel of stream ``settlement``.
- Exposure: after a commit the buyers' exposure changes (except a contract's opening, which the
  shard already counted at allocation) are applied to the Redis cache (payments and cancels
  release exposure).

Answers are dicts; a refused command answers ``{"error": {"code", "detail", "status"}}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from actors.core import events as ev
from actors.core.ids import SETTLEMENT_STREAM, events_channel
from actors.core.posttrade import events as pe
from actors.core.posttrade.engine import (
    Cancel,
    Command,
    OpenContract,
    Pay,
    PostTradeError,
    RecordDelivery,
    SettlementEngine,
    Sweep,
)
from actors.core.posttrade.ledger import DESK, EXPOSURE, POST_PENDING, VOID_PENDING, Transfer, kind_of
from actors.core.posttrade.terms import Terms
from persistence.event_store import decode_event
from persistence.settlement_rows import batch_transfers, settlement_rows, transfer_seq
from persistence.settlement_store import PostgresSettlementStore
from persistence.store import CommitFailed, CommitOutcomeUnknown

log = logging.getLogger(__name__)
LIVE_WINDOW_MS = 45 * 86_400_000  # a log whose newest command is older is a replay of the past


class SettlementUnavailable(RuntimeError):
    """The batch was not committed (store down); nothing of it is applied. Retry later."""


def _error(exc: PostTradeError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "detail": exc.detail, "status": exc.status}}


def exposure_deltas(
    engine: SettlementEngine, transfers: list[Transfer], skip_seqs: set[int]
) -> dict[str, int]:
    """Change of each buyer's exposure balance (paise) made by ``transfers``, leaving out those of
    the events ``skip_seqs`` (contract openings: the shard counted them at allocation)."""
    out: dict[str, int] = {}
    done = engine.state.ledger.transfers
    for t in transfers:
        if transfer_seq(t) in skip_seqs or kind_of(t.debit) != EXPOSURE:
            continue
        if t.flags & (POST_PENDING | VOID_PENDING):
            held = done[t.pending_id].amount
            delta = (0 if t.flags & VOID_PENDING else t.amount) - held
        else:
            delta = t.amount
        for acct, sign in ((t.debit, 1), (t.credit, -1)):
            party = acct.rpartition(":")[0]
            if party != DESK:
                out[party] = out.get(party, 0) + sign * delta
    return {p: d for p, d in out.items() if d}


class SettlementService:
    """The settlement host. ``store``: a :class:`PostgresSettlementStore`; ``terms``: the desk's
    terms; ``exposure``: a :class:`persistence.exposure.ExposureStore` or None."""

    def __init__(
        self,
        store: PostgresSettlementStore,
        terms: Terms | None = None,
        exposure: Any = None,
        page: int = 20_000,
    ) -> None:
        self.store = store
        self.terms = terms or Terms()
        self.exposure = exposure
        self.page = page
        self.engine = SettlementEngine(self.terms)
        self.scanned: dict[str, int] = {}
        self.last_ts = 0
        self._lock = asyncio.Lock()
        self.counters = dict.fromkeys(("commands", "events", "contracts_opened", "failures", "recoveries"), 0)

    async def start(self) -> int:
        """Recover from the log; returns the recovered seq."""
        engine = SettlementEngine(self.terms)
        after = 0
        while True:
            rows = await self.store.read_events(after, self.page)
            if not rows:
                break
            engine.replay([decode_event(r) for r in rows])
            after = rows[-1][0]
            self.last_ts = max(self.last_ts, rows[-1][2])
        self.engine = engine
        self.scanned = dict(engine.state.sources)
        self.counters["recoveries"] += 1
        return engine.state.seq

    async def _commit(self, events: list[ev.Event]) -> None:
        if not events:
            return
        st = self.engine.state
        rows = settlement_rows(st, events)
        transfers = batch_transfers(st, events[0].seq)
        try:
            await self.store.append(rows)
        except CommitOutcomeUnknown:
            try:
                committed = await self.store.max_seq()
            except Exception:
                committed = -1
            if committed < rows.last_seq:
                await self._rollback()
                raise SettlementUnavailable("commit outcome unknown; retry with the same key") from None
        except CommitFailed as exc:
            await self._rollback()
            raise SettlementUnavailable(str(exc)) from None
        self.counters["events"] += len(events)
        self.last_ts = max(self.last_ts, events[-1].ts)
        if self.exposure is not None:
            await self._publish(rows.events)
            opened = {e.seq for e in events if e.type == pe.CONTRACT_OPENED}
            deltas = exposure_deltas(self.engine, transfers, opened)
            if deltas:
                try:
                    await asyncio.to_thread(self.exposure.adjust, deltas)
                except Exception:  # the cache is rebuilt from the ledger; never fail a commit
                    log.exception("exposure cache update failed")

    async def _publish(self, rows: list[tuple[Any, ...]]) -> None:
        """Publish committed events on ``td:events:settlement`` (the WebSocket ``mine`` channel of
        stream ``settlement``); a Redis failure never fails a commit (clients resume from seq)."""
        msgs = [
            f'{{"shard_id":"{SETTLEMENT_STREAM}","seq":{seq},"type":"{typ}","ts":{ts},"payload":{payload}}}'
            for (_s, seq, typ, _v, payload, ts) in rows
        ]

        def send() -> None:
            pipe = self.exposure.client.pipeline(transaction=False)
            for m in msgs:
                pipe.publish(events_channel(SETTLEMENT_STREAM), m)
            pipe.execute()

        try:
            await asyncio.to_thread(send)
        except Exception:
            log.warning("settlement event publish failed", exc_info=True)

    async def _rollback(self) -> None:
        self.counters["failures"] += 1
        try:
            await self.start()
        except Exception:  # store still down: the next command recovers first
            self.engine = SettlementEngine(self.terms)
            self.engine.state.seq = -1

    async def _ensure_ready(self) -> None:
        if self.engine.state.seq < 0:
            await self.start()

    async def run(self, cmd: Command) -> dict[str, Any]:
        """Execute and commit one command (serially); the result view or ``{"error": ...}``.
        Raises :class:`SettlementUnavailable` when the store cannot commit."""
        async with self._lock:
            await self._ensure_ready()
            if (
                isinstance(cmd, RecordDelivery | Cancel)
                and cmd.contract_id not in self.engine.state.contracts
            ):
                await self._catch_up_locked()
            if isinstance(cmd, Pay) and cmd.invoice_id not in self.engine.state.invoices:
                await self._catch_up_locked()
            try:
                events, result = self.engine.execute(cmd)
            except PostTradeError as exc:
                return _error(exc)
            await self._commit(events)
            self.counters["commands"] += 1
            return result

    async def catch_up(self, limit: int = 5_000) -> int:
        """Open contracts for committed allocations after the checkpoint; returns how many opened."""
        async with self._lock:
            await self._ensure_ready()
            return await self._catch_up_locked(limit)

    async def _catch_up_locked(self, limit: int = 5_000) -> int:
        opened = 0
        for shard_id in await self.store.shard_ids():
            after = self.scanned.get(shard_id, 0)
            rows = await self.store.allocations_after(shard_id, after, limit)
            if not rows:
                continue
            allocs = [decode_event(r) for r in rows]
            docs = await self.store.order_docs(
                sorted({x for a in allocs for x in (a.payload.buy_order_id, a.payload.sell_order_id)})
            )
            region, _, commodity = shard_id.partition(".")
            events: list[ev.Event] = []
            for a in allocs:
                p = a.payload
                buy, sell = docs.get(p.buy_order_id, {}), docs.get(p.sell_order_id, {})
                point = {
                    k: sell.get(k) for k in ("lat", "lon", "city", "district") if sell.get(k) is not None
                }
                cmd = OpenContract(
                    a.ts,
                    p.allocation_id,
                    shard_id,
                    a.seq,
                    commodity,
                    region,
                    p.buyer_id,
                    p.seller_id,
                    int(p.quantity_kg),
                    int(p.price),
                    {k: (float(v[0]), float(v[1])) for k, v in (buy.get("quality_ranges") or {}).items()},
                    p.buy_order_id,
                    p.sell_order_id,
                    point,
                )
                new, _ = self.engine.execute(cmd)
                events += new
            await self._commit(events)
            self.scanned[shard_id] = rows[-1][0]
            opened += sum(1 for e in events if e.type == pe.CONTRACT_OPENED)
        self.counters["contracts_opened"] += opened
        return opened

    # -- commands -----------------------------------------------------------------------------
    async def deliver(
        self,
        party_id: str | None,
        contract_id: str,
        delivered_kg: int,
        quality: dict[str, float],
        delivered_at: int | None = None,
        key: str = "",
        ts: int | None = None,
    ) -> dict[str, Any]:
        """Record a delivery (seller); see :class:`RecordDelivery`."""
        now = ts or _now_ms()
        return await self.run(
            RecordDelivery(
                now,
                party_id,
                contract_id,
                int(delivered_kg),
                quality,
                now if delivered_at is None else int(delivered_at),
                key,
            )
        )

    async def pay(
        self,
        party_id: str | None,
        invoice_id: str,
        amount: int,
        payment_ref: str,
        paid_at: int | None = None,
        ts: int | None = None,
    ) -> dict[str, Any]:
        """Record a payment (buyer); see :class:`Pay`."""
        now = ts or _now_ms()
        return await self.run(
            Pay(now, party_id, invoice_id, int(amount), payment_ref, now if paid_at is None else int(paid_at))
        )

    async def cancel(
        self,
        party_id: str | None,
        contract_id: str,
        reason: str,
        at: int | None = None,
        ts: int | None = None,
    ) -> dict[str, Any]:
        """Ask for a cancel; see :class:`Cancel`."""
        now = ts or _now_ms()
        return await self.run(Cancel(now, party_id, contract_id, reason, now if at is None else int(at)))

    async def sweep(self, as_of: int | None = None, ts: int | None = None) -> dict[str, Any]:
        """The end-of-day job at ``as_of`` (default now); see :class:`Sweep`."""
        now = ts or _now_ms()
        await self.catch_up()
        return await self.run(Sweep(now, now if as_of is None else int(as_of)))

    def info(self) -> dict[str, Any]:
        """Seq, counts and counters."""
        st = self.engine.state
        return {
            "seq": st.seq,
            "contracts": len(st.contracts),
            "invoices": len(st.invoices),
            "scanned": dict(self.scanned),
            **self.counters,
        }

    def business_time(self) -> int:
        """The desk's latest business time: the newest command timestamp in its settlement log
        (0 when empty)."""
        return self.last_ts

    def wall_sweep_due(self, now_ms: int) -> bool:
        """Whether the wall-clock sweep may run at ``now_ms``: only while the desk lives in the
        present (its newest logged command within :data:`LIVE_WINDOW_MS` of now). A replay of a
        past season keeps its own clock (its commands' timestamps) and sweeps through the API; a
        wall-clock sweep would mark its whole history overdue at once (docs/post-trade.md)."""
        return now_ms - self.business_time() <= LIVE_WINDOW_MS

    async def run_periodic(self, tail_s: float = 0.5, sweep_s: float = 3600.0) -> None:
        """Forever: tail the shards every ``tail_s``; every ``sweep_s`` sweep at the wall clock
        when :meth:`wall_sweep_due`."""
        last_sweep = 0.0
        while True:
            try:
                await self.catch_up()
                if sweep_s > 0 and time.monotonic() - last_sweep >= sweep_s:
                    last_sweep = time.monotonic()
                    if self.wall_sweep_due(_now_ms()):
                        await self.sweep()
            except Exception:  # store down: try again on the next tick
                log.warning("settlement tick failed", exc_info=True)
            await asyncio.sleep(tail_s)


def _now_ms() -> int:
    return int(time.time() * 1000)
