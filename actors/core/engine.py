"""The matching engine of one shard: a deterministic, event-sourced order book.

A shard owns the book of one (region, commodity). It takes a batch of commands, asks risk about
every candidate pair of the batch at once (:meth:`ShardEngine.plan` then the decider), and
executes the batch serially (:meth:`ShardEngine.execute`). Every state change is an
:class:`~actors.core.events.Event` with the next gap-free sequence number, and the live path changes
state **only** by applying its own events, so ``apply(events)`` rebuilds exactly the live state and
recovery never re-runs matching or risk. The engine never reads the wall clock: time is the
commands' ``ts`` (epoch ms).

This module is the batch API and the sequence numbers; the work is split by job:
:mod:`~actors.core.placing` (place, cancel, amend, expiry), :mod:`~actors.core.matching` (ranking
and fill planning), :mod:`~actors.core.negotiation` (proposals, reservations),
:mod:`~actors.core.market_controls` (price bands, halts, circuit breaker, kill switch),
:mod:`~actors.core.projector` (apply, snapshot, restore) and :mod:`~actors.core.queries` (read side).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.core import validation as v
from actors.core.commands import (
    AcceptProposal,
    AmendOrder,
    CancelOrder,
    ConfirmReservation,
    HaltShard,
    KillSwitch,
    PlaceOrder,
    RejectProposal,
    ReleaseReservation,
    ResumeShard,
    SetMarketReference,
    SetPriceBand,
    Tick,
)
from actors.core.events import Event, Payload
from actors.core.matching import Matching
from actors.core.negotiation import Negotiation
from actors.core.orders import Order
from actors.core.place_check import place_ok
from actors.core.placing import Placing, batch_ref
from actors.core.projector import Projector
from actors.core.queries import Queries
from actors.core.risk.types import BatchDecider, PassAllDecider, RiskQuery, RiskRequest, RiskVerdicts
from actors.core.state import PASS_ALL

__all__ = ["PASS_ALL", "BatchResult", "ShardEngine"]


class BatchResult:
    """What :meth:`ShardEngine.execute` returns: one result dict per command (same order), the
    events recorded (seq-ordered), and the credit each buyer used (paise notional)."""

    __slots__ = ("results", "events", "credit_used")

    def __init__(self, results: list[dict[str, Any]], events: list[Event], credit_used: dict[str, int]):
        self.results = results
        self.events = events
        self.credit_used = credit_used


class ShardEngine(Placing, Matching, Negotiation, Projector, Queries):
    """Order book and matching engine of one (region, commodity) shard.

    Args:
        region: ISO 3166-2 code, e.g. ``IN-GJ``.
        commodity: a commodity in :mod:`actors.core.commodities` (aliases accepted).
        profile: default ranking profile, ``price_time`` or ``quality`` (default: the commodity's).

    Raises:
        KeyError: unknown commodity; ValueError: unknown profile (at construction only; commands
        never raise).
    """

    def process(self, commands: Sequence[Any], decider: BatchDecider | None = None) -> BatchResult:
        """Plan, ask ``decider`` (default: pass-all) once, and execute the batch."""
        decider = decider or PassAllDecider()
        if getattr(decider, "needs_queries", True):
            verdicts = decider.decide(self.plan(commands))
        else:
            verdicts = PASS_ALL
        return self.execute(commands, verdicts)

    def plan(self, commands: Sequence[Any]) -> RiskRequest:
        """Every candidate pair the batch may allocate or propose, and credit requests per buyer.

        Pairs are listed against the book as it stands plus the batch's own new orders, ignoring
        quantities (a superset of what execution can touch). Keys use order ids for resting orders and
        ``new:<party>\\x1f<client_order_id>`` for orders the batch places. Never raises.
        """
        req = RiskRequest()
        seen: set[tuple[str, str]] = set()
        incoming: list[tuple[str, Order]] = []
        notional_cap: dict[str, int] = {}
        capped: set[str] = set()
        for cmd in commands:
            try:
                taker: Order | None = None
                ref = ""
                if type(cmd) is PlaceOrder:
                    key = (cmd.party_id, cmd.client_order_id)
                    if key in self.results or key in self._remembered:
                        continue
                    if not place_ok(cmd, self.spec, self.region) and (
                        v.check_place(cmd, self._spec_of(cmd.commodity), self.region, self.commodity)
                        is not None
                    ):
                        continue
                    self._validated[id(cmd)] = cmd  # execute() need not check it again
                    ref = batch_ref(cmd)
                    taker = self._order_from_command(cmd, ref, 0, None)
                    incoming.append((ref, taker))
                elif type(cmd) is AmendOrder:
                    o = self.orders.get(cmd.order_id) if isinstance(cmd.order_id, str) else None
                    if o is None or not o.is_live:
                        continue
                    ref = o.order_id
                    taker = o.copy()
                    if cmd.price is not None and v.check_price(cmd.price) is None:
                        taker.price = cmd.price
                    if cmd.quantity_kg is not None and v.check_quantity(cmd.quantity_kg) is None:
                        taker.open_kg = max(taker.open_kg, cmd.quantity_kg - (o.quantity_kg - o.open_kg))
                elif type(cmd) is AcceptProposal:
                    p = self.proposals.get(cmd.proposal_id) if isinstance(cmd.proposal_id, str) else None
                    if p is not None and p["status"] == "OPEN":
                        amount = p["quantity_kg"] * p["price"]
                        req.credit_requests[p["buyer_id"]] = (
                            req.credit_requests.get(p["buyer_id"], 0) + amount
                        )
                        notional_cap[p["buyer_id"]] = notional_cap.get(p["buyer_id"], 0) + amount
                    continue
                else:
                    continue
                for resting_ref, resting in self._plan_candidates(taker, ref, incoming):
                    buy, sell = (taker, resting) if taker.side == "BUY" else (resting, taker)
                    buy_ref, sell_ref = (ref, resting_ref) if taker.side == "BUY" else (resting_ref, ref)
                    if (buy_ref, sell_ref) in seen:
                        continue
                    seen.add((buy_ref, sell_ref))
                    qty = min(buy.open_kg, sell.open_kg)
                    req.queries.append(
                        RiskQuery(
                            buy_ref,
                            sell_ref,
                            buy.party_id,
                            sell.party_id,
                            self.commodity,
                            self.region,
                            qty,
                            resting.price,
                            int(cmd.ts),
                        )
                    )
                    req.credit_requests[buy.party_id] = (
                        req.credit_requests.get(buy.party_id, 0) + qty * resting.price
                    )
                    if buy_ref not in capped:  # a buyer never needs more than its orders' notional
                        capped.add(buy_ref)
                        notional_cap[buy.party_id] = (
                            notional_cap.get(buy.party_id, 0) + buy.open_kg * buy.price
                        )
            except Exception:  # noqa: BLE001 - planning is advisory; execute() validates again
                continue
        for buyer, amount in list(req.credit_requests.items()):
            req.credit_requests[buyer] = min(amount, notional_cap.get(buyer, amount))
        return req

    def execute(self, commands: Sequence[Any], verdicts: RiskVerdicts = PASS_ALL) -> BatchResult:
        """Execute a batch serially with the risk ``verdicts`` for its pairs. Never raises on bad input:
        every rejected command records a rejected event with a reason code."""
        self._out = []
        self._in_batch = True
        self._batch_evicted = {}
        self._verdicts = verdicts
        self._credit_left = dict(verdicts.credit_grants)
        self._credit_used = {}
        self._refs = {}
        results: list[dict[str, Any]] = []
        for cmd in commands:
            start = len(self._out)
            try:
                res = self._dispatch(cmd)
            except Exception as exc:  # noqa: BLE001 - last line of defence: the shard must not crash
                res = self._reject_command(cmd, v.INTERNAL_ERROR, f"{type(exc).__name__}")
            if "seqs" not in res:
                res["seqs"] = [e.seq for e in self._out[start:]]
            results.append(res)
        out = BatchResult(results, self._out, self._credit_used)
        self._out = []
        self._verdicts = PASS_ALL
        self._refs = {}
        self._validated = {}
        self._remembered = {}
        self._in_batch = False
        return out

    def _dispatch(self, cmd: Any) -> dict[str, Any]:
        t = type(cmd)
        handler = _HANDLERS.get(t)
        if handler is None:
            return self._reject_command(cmd, v.INVALID_COMMAND, f"unknown command type {t.__name__}")
        ts = getattr(cmd, "ts", None)
        if not (ts.__class__ is int and 0 <= ts < v.MAX_TS):  # the common case of check_ts
            if (p := v.check_ts(ts)) is not None:
                if t is PlaceOrder:
                    return self._reject_place(cmd, *p)
                return self._reject_command(cmd, *p)
            ts = int(ts)  # type: ignore[arg-type]
        if t is not PlaceOrder and (p := v.check_text(cmd)) is not None:  # place: in _place
            return self._reject_command(cmd, *p)
        if self._expiries or self._holds or self.halted_until is not None:
            self._advance(ts)
        return handler(self, cmd)

    def _emit(self, etype: str, ts: int, payload: Payload) -> Event:
        ev = Event(self.seq + 1, etype, ts, payload)
        self.apply(ev)
        self._out.append(ev)
        return ev

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-{self.shard_id}-{self.seq + 1}"

    def _tick(self, cmd: Tick) -> dict[str, Any]:
        return {"command": "tick", "status": "OK"}


_HANDLERS: dict[type, Any] = {
    PlaceOrder: ShardEngine._place,
    CancelOrder: ShardEngine._cancel,
    AmendOrder: ShardEngine._amend,
    Tick: ShardEngine._tick,
    AcceptProposal: ShardEngine._accept,
    RejectProposal: ShardEngine._reject_proposal,
    ConfirmReservation: ShardEngine._confirm,
    ReleaseReservation: ShardEngine._release,
    HaltShard: ShardEngine._halt,
    ResumeShard: ShardEngine._resume_halt,
    SetPriceBand: ShardEngine._set_band,
    SetMarketReference: ShardEngine._set_reference,
    KillSwitch: ShardEngine._kill_switch,
}
