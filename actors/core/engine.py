"""The matching engine of one shard: a deterministic, event-sourced order book.

A shard owns the book of one (region, commodity). It takes a batch of commands, asks risk about
every candidate pair of the batch at once (:meth:`ShardEngine.plan` then the decider), and
executes the batch serially (:meth:`ShardEngine.execute`). Every state change is an
:class:`~actors.core.events.Event` with the next gap-free sequence number, and the live path changes
state **only** by applying its own events, so ``apply(events)`` rebuilds exactly the live state and
recovery never re-runs matching or risk. The engine never reads the wall clock: time is the
commands' ``ts`` (epoch ms).

Matching semantics follow ARCHITECTURE.md: hard filters (price, quality ranges, haversine distance,
visibility, self-trade and linked-party prevention, min quantity / all-or-none, expiry); ranking by
profile (``price_time`` or ``quality``); allocation best-first at the **resting** order's price.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from actors.core import orders as st
from actors.core import validation as v
from actors.core.book import BookSide
from actors.core.commands import (
    AcceptProposal,
    AmendOrder,
    CancelOrder,
    ConfirmReservation,
    PlaceOrder,
    RejectProposal,
    ReleaseReservation,
    Tick,
    command_kind,
)
from actors.core.commodities import canonical_commodity, get_spec
from actors.core.events import (
    ALLOCATED,
    AMENDED,
    CANCELLED,
    COMMAND_REJECTED,
    CONFIRMED,
    EXPIRED,
    ORDER_ACCEPTED,
    ORDER_REJECTED,
    PROPOSAL_REJECTED,
    PROPOSED,
    RELEASED,
    RESERVED,
    Event,
)
from actors.core.geo import haversine_km
from actors.core.ids import shard_id_for
from actors.core.orders import Order
from actors.core.regions import normalize_region
from actors.core.risk.types import (
    PASS_DECISION,
    Outcome,
    PassAllDecider,
    RiskDecider,
    RiskDecision,
    RiskQuery,
    RiskRequest,
    RiskVerdicts,
)
from actors.core.scoring import (
    distance_component,
    distance_limit,
    hard_filters,
    price_component,
    quality_closeness,
)
from actors.core.visibility import visible_to

PASS_ALL = RiskVerdicts(pass_all=True)
_PASS_RISK = PASS_DECISION.to_dict()
MAX_HOLD_MS = 7 * 24 * 3600 * 1000


def _anonymous_view(o: Order) -> bool:
    """Aggregated market data (top, depth) has no viewer: only what anyone may see counts."""
    return visible_to(o.visibility, o.allow_list, o.party_id, None)


def _ref(cmd: PlaceOrder) -> str:
    """Order reference of an order placed in the current batch, used before it has an id."""
    return f"new:{cmd.party_id}\x1f{cmd.client_order_id}"


class BatchResult:
    """What :meth:`ShardEngine.execute` returns: one result dict per command (same order), the
    events recorded (seq-ordered), and the credit each buyer used (paise notional)."""

    __slots__ = ("results", "events", "credit_used")

    def __init__(self, results: list[dict[str, Any]], events: list[Event], credit_used: dict[str, int]):
        self.results = results
        self.events = events
        self.credit_used = credit_used


class _Fill:
    """A planned allocation or proposal of one taker against one resting order."""

    __slots__ = ("resting", "qty", "decision", "score", "breakdown")

    def __init__(
        self, resting: Order, qty: int, decision: RiskDecision, score: float, breakdown: dict[str, Any]
    ):
        self.resting = resting
        self.qty = qty
        self.decision = decision
        self.score = score
        self.breakdown = breakdown


class ShardEngine:
    """Order book and matching engine of one (region, commodity) shard.

    Args:
        region: ISO 3166-2 code, e.g. ``IN-GJ``.
        commodity: a commodity in :mod:`actors.core.commodities` (aliases accepted).
        profile: default ranking profile, ``price_time`` or ``quality`` (default: the commodity's).

    Raises:
        KeyError: unknown commodity (at construction only; commands never raise).
    """

    prune_quality_scan = True  # stop scanning price levels that cannot outrank (see _quality_ranked)

    def __init__(self, region: str, commodity: str, profile: str | None = None):
        self.spec = get_spec(commodity)
        self.region = normalize_region(region)
        self.commodity = self.spec.name
        self.shard_id = shard_id_for(region, self.commodity)
        self.profile = profile or self.spec.default_profile
        if self.profile not in ("price_time", "quality"):
            raise ValueError(f"unknown profile {self.profile!r}")
        self.seq = 0
        self.clock = 0
        self.orders: dict[str, Order] = {}
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        self.proposals: dict[str, dict[str, Any]] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.near_dups: dict[tuple[Any, ...], tuple[str, int]] = {}
        self._expiries: list[tuple[int, str]] = []
        self._holds: list[tuple[int, str]] = []
        # per-batch state
        self._out: list[Event] = []
        self._verdicts: RiskVerdicts = PASS_ALL
        self._credit_left: dict[str, int] = {}
        self._credit_used: dict[str, int] = {}
        self._refs: dict[str, str] = {}
        self._pending: Order | None = None  # live-path order object for the next ORDER_ACCEPTED

    # ------------------------------------------------------------------ batch API

    def process(self, commands: Sequence[Any], decider: RiskDecider | None = None) -> BatchResult:
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
                    if (cmd.party_id, cmd.client_order_id) in self.results:
                        continue
                    if (
                        v.check_place(cmd, self._spec_of(cmd.commodity), self.region, self.commodity)
                        is not None
                    ):
                        continue
                    ref = _ref(cmd)
                    taker = self._order_from_command(cmd, ref, 0, None)
                    incoming.append((ref, taker))
                elif type(cmd) is AmendOrder:
                    o = self.orders.get(cmd.order_id) if isinstance(cmd.order_id, str) else None
                    if o is None or not o.is_live:
                        continue
                    ref = o.order_id
                    taker = Order.from_dict(o.to_dict())
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
        return out

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, cmd: Any) -> dict[str, Any]:
        t = type(cmd)
        ts = getattr(cmd, "ts", None)
        if t not in (
            PlaceOrder,
            CancelOrder,
            AmendOrder,
            Tick,
            AcceptProposal,
            RejectProposal,
            ConfirmReservation,
            ReleaseReservation,
        ):
            return self._reject_command(cmd, v.INVALID_COMMAND, f"unknown command type {t.__name__}")
        if (p := v.check_ts(ts)) is not None:
            if t is PlaceOrder:
                return self._reject_place(cmd, *p)
            return self._reject_command(cmd, *p)
        self._advance(int(ts))  # type: ignore[arg-type]
        if t is PlaceOrder:
            return self._place(cmd)
        if t is CancelOrder:
            return self._cancel(cmd)
        if t is AmendOrder:
            return self._amend(cmd)
        if t is Tick:
            return {"command": "tick", "status": "OK"}
        if t is AcceptProposal:
            return self._accept(cmd)
        if t is RejectProposal:
            return self._reject_proposal(cmd)
        if t is ConfirmReservation:
            return self._confirm(cmd)
        return self._release(cmd)

    def _emit(self, etype: str, ts: int, payload: dict[str, Any]) -> Event:
        ev = Event(self.seq + 1, etype, ts, payload)
        self.apply(ev)
        self._out.append(ev)
        return ev

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}-{self.shard_id}-{self.seq + 1}"

    # ------------------------------------------------------------------ rejections

    def _reject_place(self, cmd: Any, reason: str, detail: str) -> dict[str, Any]:
        party = getattr(cmd, "party_id", None)
        coid = getattr(cmd, "client_order_id", None)
        ts = getattr(cmd, "ts", None)
        payload = {
            "party_id": party if v.valid_id(party) else None,
            "client_order_id": coid if v.valid_id(coid) else None,
            "reason": reason,
            "detail": detail,
        }
        self._emit(ORDER_REJECTED, self._event_ts(ts), payload)
        key = (payload["party_id"], payload["client_order_id"])
        res = self.results.get(key) if None not in key else None  # type: ignore[arg-type]
        return dict(res) if res is not None else _place_result(None, payload, "REJECTED")

    def _reject_command(self, cmd: Any, reason: str, detail: str) -> dict[str, Any]:
        kind = command_kind(cmd)
        party = getattr(cmd, "party_id", None)
        target = None
        for attr in ("order_id", "proposal_id", "reservation_id"):
            val = getattr(cmd, attr, None)
            if val is not None:
                target = val if v.valid_id(val) else None
                break
        payload = {
            "command": kind,
            "party_id": party if v.valid_id(party) else None,
            "target": target,
            "reason": reason,
            "detail": detail,
        }
        self._emit(COMMAND_REJECTED, self._event_ts(getattr(cmd, "ts", None)), payload)
        return {"command": kind, "status": "REJECTED", "reason": reason, "detail": detail, "target": target}

    def _event_ts(self, ts: Any) -> int:
        return int(ts) if v.check_ts(ts) is None else self.clock

    # ------------------------------------------------------------------ time

    def _advance(self, ts: int) -> None:
        """Expire orders and holds due at ``max(clock, ts)``."""
        now = ts if ts > self.clock else self.clock
        exp = self._expiries
        while exp and exp[0][0] <= now:
            due, oid = heapq.heappop(exp)
            o = self.orders.get(oid)
            if (
                o is not None
                and o.valid_until == due
                and o.open_kg > 0
                and o.status
                in (
                    st.OPEN,
                    st.PARTIALLY_FILLED,
                )
            ):
                self._emit(EXPIRED, due, {"order_id": oid, "expired_kg": o.open_kg})
        holds = self._holds
        while holds and holds[0][0] <= now:
            due, rid = heapq.heappop(holds)
            r = self.reservations.get(rid)
            if r is not None and r["status"] == "ACTIVE" and r["hold_until"] == due:
                self._emit(RELEASED, due, _release_payload(r, "HOLD_EXPIRED"))

    # ------------------------------------------------------------------ place

    def _spec_of(self, commodity: Any) -> Any:
        if commodity == self.commodity:
            return self.spec
        canon = canonical_commodity(commodity) if isinstance(commodity, str) else None
        return get_spec(canon) if canon else None

    def _place(self, cmd: PlaceOrder) -> dict[str, Any]:
        key = (cmd.party_id, cmd.client_order_id)
        try:
            prior = self.results.get(key)
        except TypeError:
            prior = None
        if prior is not None:
            res = dict(prior)
            res["duplicate"] = True
            return res
        problem = v.check_place(cmd, self._spec_of(cmd.commodity), self.region, self.commodity)
        if problem is not None:
            return self._reject_place(cmd, *problem)
        seq = self.seq + 1
        order_id = f"O-{self.shard_id}-{seq}"
        order = self._order_from_command(cmd, order_id, seq, self._near_duplicate(cmd))
        self._pending = order
        self._emit(ORDER_ACCEPTED, cmd.ts, {"order": order.to_dict()})
        self._refs[order_id] = _ref(cmd)
        live = self.orders[order_id]
        self._match(live, cmd.ts, "place")
        res = dict(self.results[key])
        return res

    def _order_from_command(self, cmd: PlaceOrder, order_id: str, seq: int, near_dup: str | None) -> Order:
        o = Order.__new__(Order)
        o.order_id = order_id
        o.party_id = cmd.party_id
        o.client_order_id = cmd.client_order_id
        o.side = str(cmd.side)
        o.commodity = self.commodity
        o.region = cmd.region
        o.quantity_kg = cmd.quantity_kg
        o.open_kg = cmd.quantity_kg
        o.reserved_kg = o.allocated_kg = o.cancelled_kg = o.expired_kg = 0
        o.price = cmd.price
        o.quality = {k: float(x) for k, x in cmd.quality.items()}
        o.quality_ranges = {k: (float(r[0]), float(r[1])) for k, r in cmd.quality_ranges.items()}
        o.quality_target = {k: float(x) for k, x in cmd.quality_target.items()}
        o.lat = float(cmd.lat)
        o.lon = float(cmd.lon)
        o.city = cmd.city
        o.district = cmd.district
        o.max_distance_km = float(cmd.max_distance_km) if cmd.max_distance_km is not None else None
        o.visibility = str(cmd.visibility)
        o.allow_list = frozenset(cmd.allow_list)
        o.min_order_kg = cmd.min_order_kg
        o.allow_partial = cmd.allow_partial
        o.valid_until = cmd.valid_until
        o.intent = (
            (str(cmd.intent) if cmd.intent is not None else "DIRECT_BUY") if cmd.side == "BUY" else None
        )
        o.linked_parties = frozenset(cmd.linked_parties)
        o.profile = str(cmd.profile) if cmd.profile is not None else None
        o.status = st.OPEN
        o.created_ts = o.updated_ts = cmd.ts
        o.priority = seq
        o.near_duplicate_of = near_dup
        return o

    def _near_duplicate(self, cmd: PlaceOrder) -> str | None:
        if not self.spec.flag_near_duplicates:
            return None
        prev = self.near_dups.get(
            _near_key(cmd.party_id, str(cmd.side), cmd.price, cmd.quantity_kg, cmd.lat, cmd.lon)
        )
        if prev is not None and 0 <= cmd.ts - prev[1] <= self.spec.near_duplicate_window_ms:
            return prev[0]
        return None

    # ------------------------------------------------------------------ matching

    def _decision(self, taker: Order, resting: Order) -> RiskDecision | None:
        vd = self._verdicts
        if vd.pass_all and not vd.decisions:
            return PASS_DECISION
        refs = self._refs
        t_ref = refs.get(taker.order_id, taker.order_id)
        r_ref = refs.get(resting.order_id, resting.order_id)
        if taker.side == "BUY":
            return vd.get(t_ref, r_ref)
        return vd.get(r_ref, t_ref)

    def _price_time(self, taker: Order, opposite: BookSide, decide: bool) -> Iterator[_Fill]:
        """Price-time candidates, lazily: best price, then time priority."""
        taker_is_buy = taker.side == "BUY"
        for resting in opposite.crossing(taker.price):
            buy, sell = (taker, resting) if taker_is_buy else (resting, taker)
            if hard_filters(buy, sell) is None:
                continue
            decision = self._decision(taker, resting) if decide else PASS_DECISION
            if decision is None or decision.outcome == Outcome.BLOCK:
                continue
            yield _Fill(resting, 0, decision, 1.0, {"profile": "price_time"})

    def _ranked(self, taker: Order, decide: bool = True) -> Iterable[_Fill]:
        """Candidates for ``taker`` best-first (qty not yet set), after hard filters and risk:
        a lazy iterator for ``price_time``, a scored and sorted list for ``quality``."""
        if (taker.profile or self.profile) == "price_time":
            return self._price_time(taker, self.asks if taker.side == "BUY" else self.bids, decide)
        return self._quality_ranked(taker, decide, None)[0]

    def _quality_ranked(
        self, taker: Order, decide: bool, need_kg: int | None
    ) -> tuple[list[_Fill], float | None]:
        """Quality-profile candidates, scored and sorted best-first.

        With ``need_kg``, price levels are scanned best-first and the scan stops (``pruned``) once
        candidates scoring strictly above the best score any further level could reach (its price
        component plus full quality, distance and trust) already hold ``need_kg``: no unscanned
        candidate could then outrank them. Returns ``(candidates, pruned)``.
        """
        opposite = self.asks if taker.side == "BUY" else self.bids
        taker_is_buy = taker.side == "BUY"
        spec = self.spec
        w = spec.weights
        band = spec.price_band
        rest_bound = w.quality + w.distance + w.trust
        out: list[_Fill] = []
        pruned: float | None = None
        for price, level in opposite.crossing_levels(taker.price):
            if need_kg is not None and out:
                bound = w.price * price_component(taker, price, band) + rest_bound + 1e-6
                cover = 0
                for f in out:
                    if f.score > bound:
                        cover += f.resting.open_kg
                if cover >= need_kg:
                    pruned = bound
                    break
            for resting in level.values():
                buy, sell = (taker, resting) if taker_is_buy else (resting, taker)
                dist = hard_filters(buy, sell)
                if dist is None:
                    continue
                decision = self._decision(taker, resting) if decide else PASS_DECISION
                if decision is None or decision.outcome == Outcome.BLOCK:
                    continue
                if dist < 0:
                    dist = haversine_km(buy.lat, buy.lon, sell.lat, sell.lon)
                sp = price_component(taker, resting.price, band)
                sq = quality_closeness(buy, sell, spec)
                sd = distance_component(dist, distance_limit(buy, sell), spec)
                trust = min(1.0, max(0.0, decision.trust))
                total = w.price * sp + w.quality * sq + w.distance * sd + w.trust * trust
                penalty = decision.penalty if decision.outcome == Outcome.WARN else 0.0
                total *= 1.0 - penalty
                if total < spec.min_score:
                    continue
                breakdown = {
                    "profile": "quality",
                    "price": round(sp, 6),
                    "quality": round(sq, 6),
                    "distance": round(sd, 6),
                    "distance_km": round(dist, 3),
                    "trust": round(trust, 6),
                    "penalty": round(penalty, 6),
                    "weights": [w.price, w.quality, w.distance, w.trust],
                }
                out.append(_Fill(resting, 0, decision, round(total, 6), breakdown))
        out.sort(key=lambda f: (-f.score, f.resting.priority))
        return out, pruned

    def _fill_qty(
        self, taker: Order, resting: Order, remaining: int, negotiate: bool, credit: dict[str, int]
    ) -> int:
        """Quantity the pair can trade, 0 when min-quantity / all-or-none / credit rule out a fill."""
        buy, sell = (taker, resting) if taker.side == "BUY" else (resting, taker)
        q = remaining if remaining < resting.open_kg else resting.open_kg
        if not negotiate and buy.party_id in credit:
            price = resting.price
            q = min(q, credit[buy.party_id] // price)
        if q <= 0:
            return 0
        for o in (buy, sell):
            o_open = remaining if o is taker else o.open_kg
            if q < o_open and (q < o.min_order_kg or not (o.allow_partial or o is taker)):
                return 0
        return q

    def _plan_fills(self, taker: Order, ranked: Iterable[_Fill]) -> tuple[list[_Fill], int, dict[str, int]]:
        """Take candidates best-first until the taker is covered. Returns the fills, the taker's
        quantity left over, and the credit left per buyer (a copy: nothing is committed here)."""
        credit = dict(self._credit_left) if self._credit_left else self._credit_left
        plan: list[_Fill] = []
        remaining = taker.open_kg
        for fill in ranked:
            resting = fill.resting
            negotiate = (taker.intent == "NEGOTIATE") or (resting.intent == "NEGOTIATE")
            q = self._fill_qty(taker, resting, remaining, negotiate, credit)
            if q <= 0:
                continue
            buyer = taker.party_id if taker.side == "BUY" else resting.party_id
            if not negotiate and buyer in credit:
                credit[buyer] -= q * resting.price
            fill.qty = q
            plan.append(fill)
            remaining -= q
            if remaining == 0:
                break
        return plan, remaining, credit

    def _match(self, taker: Order, ts: int, via: str) -> None:
        """Allocate (or propose, for NEGOTIATE requirements) the taker against the book."""
        if taker.open_kg <= 0:
            return
        if (taker.profile or self.profile) == "quality" and self.prune_quality_scan:
            ranked, bound = self._quality_ranked(taker, True, taker.open_kg)
            plan, remaining, credit = self._plan_fills(taker, ranked)
            if bound is not None and (remaining > 0 or any(f.score <= bound for f in plan)):
                # quantity rules skipped some of the top candidates: scan every level
                plan, remaining, credit = self._plan_fills(taker, self._quality_ranked(taker, True, None)[0])
        else:
            plan, remaining, credit = self._plan_fills(taker, self._ranked(taker))
        if remaining > 0 and not taker.allow_partial and taker.intent != "NEGOTIATE":
            return  # all-or-none: trade nothing (the credit copy is dropped)
        self._credit_left = credit
        for fill in plan:
            resting = fill.resting
            buy, sell = (taker, resting) if taker.side == "BUY" else (resting, taker)
            negotiate = buy.intent == "NEGOTIATE"
            risk = _PASS_RISK if fill.decision is PASS_DECISION else fill.decision.to_dict()
            payload = {
                "buy_order_id": buy.order_id,
                "sell_order_id": sell.order_id,
                "buyer_id": buy.party_id,
                "seller_id": sell.party_id,
                "taker_order_id": taker.order_id,
                "taker_side": taker.side,
                "taker_command": via,
                "quantity_kg": fill.qty,
                "price": resting.price,
                "score": fill.score,
                "breakdown": fill.breakdown,
                "risk": risk,
            }
            if negotiate:
                payload["proposal_id"] = self._next_id("P")
                self._emit(PROPOSED, ts, payload)
            else:
                payload["allocation_id"] = self._next_id("A")
                payload["reservation_id"] = None
                self._emit(ALLOCATED, ts, payload)
                self._credit_used[buy.party_id] = (
                    self._credit_used.get(buy.party_id, 0) + fill.qty * resting.price
                )

    def _plan_candidates(
        self, taker: Order, taker_ref: str, incoming: list[tuple[str, Order]]
    ) -> Iterable[tuple[str, Order]]:
        for fill in self._ranked(taker, decide=False):
            yield fill.resting.order_id, fill.resting
        for ref, other in incoming:
            if ref == taker_ref or other.side == taker.side:
                continue
            buy, sell = (taker, other) if taker.side == "BUY" else (other, taker)
            if hard_filters(buy, sell) is not None:
                yield ref, other

    # ------------------------------------------------------------------ cancel / amend

    def _owned_live_order(self, cmd: Any) -> Order | dict[str, Any]:
        if not v.valid_id(getattr(cmd, "party_id", None)):
            return self._reject_command(cmd, v.INVALID_PARTY, "party_id must be a non-empty string")
        oid = getattr(cmd, "order_id", None)
        o = self.orders.get(oid) if isinstance(oid, str) else None
        if o is None or o.party_id != cmd.party_id:
            return self._reject_command(cmd, v.UNKNOWN_ORDER, "no such order of this party")
        if o.status in (st.CANCELLED, st.EXPIRED, st.FILLED) or o.open_kg == 0:
            return self._reject_command(cmd, v.ORDER_CLOSED, f"order has no open quantity ({o.status})")
        return o

    def _cancel(self, cmd: CancelOrder) -> dict[str, Any]:
        o = self._owned_live_order(cmd)
        if isinstance(o, dict):
            return o
        ev = self._emit(CANCELLED, cmd.ts, {"order_id": o.order_id, "cancelled_kg": o.open_kg})
        return {
            "command": "cancel",
            "status": "OK",
            "order_id": o.order_id,
            "cancelled_kg": ev.payload["cancelled_kg"],
        }

    def _amend(self, cmd: AmendOrder) -> dict[str, Any]:
        o = self._owned_live_order(cmd)
        if isinstance(o, dict):
            return o
        if cmd.quantity_kg is None and cmd.price is None:
            return self._reject_command(cmd, v.INVALID_AMEND, "give a new quantity_kg and/or price")
        price = o.price if cmd.price is None else cmd.price
        qty = o.quantity_kg if cmd.quantity_kg is None else cmd.quantity_kg
        if (p := v.check_price(price)) is not None or (p := v.check_quantity(qty)) is not None:
            return self._reject_command(cmd, *p)
        done = o.quantity_kg - o.open_kg
        new_open = qty - done
        if new_open <= 0:
            return self._reject_command(
                cmd,
                v.INVALID_AMEND,
                f"quantity_kg must exceed the {done} kg already allocated, reserved or closed",
            )
        if o.min_order_kg > qty:
            return self._reject_command(cmd, v.INVALID_AMEND, "quantity_kg below the order's min_order_kg")
        priority_lost = price != o.price or new_open > o.open_kg
        self._emit(
            AMENDED,
            cmd.ts,
            {
                "order_id": o.order_id,
                "quantity_kg": qty,
                "open_kg": new_open,
                "price": price,
                "priority_lost": priority_lost,
                "priority": self.seq + 1 if priority_lost else o.priority,
            },
        )
        start = len(self._out)
        if priority_lost:
            self._match(o, cmd.ts, "amend")
        allocs = [e.payload for e in self._out[start:] if e.type == ALLOCATED]
        props = [e.payload for e in self._out[start:] if e.type == PROPOSED]
        return {
            "command": "amend",
            "status": "OK",
            "order_id": o.order_id,
            "priority_lost": priority_lost,
            "allocations": allocs,
            "proposals": props,
        }

    # ------------------------------------------------------------------ negotiation

    def _accept(self, cmd: AcceptProposal) -> dict[str, Any]:
        p = self.proposals.get(cmd.proposal_id) if isinstance(cmd.proposal_id, str) else None
        if p is None or p["buyer_id"] != cmd.party_id:
            return self._reject_command(cmd, v.UNKNOWN_PROPOSAL, "no such proposal for this buyer")
        if p["status"] != "OPEN":
            return self._reject_command(cmd, v.PROPOSAL_STALE, f"proposal is {p['status']}")
        if not v.is_int(cmd.hold_ms) or not 0 < cmd.hold_ms <= MAX_HOLD_MS:
            return self._reject_command(cmd, v.INVALID_HOLD, f"hold_ms must be in 1..{MAX_HOLD_MS}")
        want = p["quantity_kg"] if cmd.quantity_kg is None else cmd.quantity_kg
        if v.check_quantity(want) is not None or want > p["quantity_kg"]:
            return self._reject_command(
                cmd, v.INVALID_QUANTITY, "quantity_kg must be in 1..the proposed quantity"
            )
        buy, sell = self.orders[p["buy_order_id"]], self.orders[p["sell_order_id"]]
        if buy.status in (st.CANCELLED, st.EXPIRED) or sell.status in (st.CANCELLED, st.EXPIRED):
            return self._reject_command(cmd, v.PROPOSAL_STALE, "an order of the proposal is closed")
        q = min(want, buy.open_kg, sell.open_kg)
        if q <= 0:
            return self._reject_command(cmd, v.PROPOSAL_STALE, "not enough open quantity left on both orders")
        if p["buyer_id"] in self._credit_left:
            q = min(q, self._credit_left[p["buyer_id"]] // p["price"])
            if q <= 0:
                return self._reject_command(cmd, v.RISK_CREDIT_LIMIT, "the buyer's credit limit is used up")
        if p["buyer_id"] in self._credit_left:
            self._credit_left[p["buyer_id"]] -= q * p["price"]
            self._credit_used[p["buyer_id"]] = self._credit_used.get(p["buyer_id"], 0) + q * p["price"]
        rid = self._next_id("R")
        self._emit(
            RESERVED,
            cmd.ts,
            {
                "reservation_id": rid,
                "proposal_id": p["proposal_id"],
                "buy_order_id": buy.order_id,
                "sell_order_id": sell.order_id,
                "buyer_id": buy.party_id,
                "seller_id": sell.party_id,
                "quantity_kg": q,
                "price": p["price"],
                "hold_until": cmd.ts + cmd.hold_ms,
            },
        )
        return {"command": "accept", "status": "OK", "reservation": dict(self.reservations[rid])}

    def _reject_proposal(self, cmd: RejectProposal) -> dict[str, Any]:
        p = self.proposals.get(cmd.proposal_id) if isinstance(cmd.proposal_id, str) else None
        if p is None or p["buyer_id"] != cmd.party_id:
            return self._reject_command(cmd, v.UNKNOWN_PROPOSAL, "no such proposal for this buyer")
        if p["status"] != "OPEN":
            return self._reject_command(cmd, v.PROPOSAL_STALE, f"proposal is {p['status']}")
        self._emit(PROPOSAL_REJECTED, cmd.ts, {"proposal_id": p["proposal_id"], "party_id": cmd.party_id})
        return {"command": "reject", "status": "OK", "proposal_id": p["proposal_id"]}

    def _active_reservation(self, cmd: Any, sellers_only: bool) -> dict[str, Any]:
        r = self.reservations.get(cmd.reservation_id) if isinstance(cmd.reservation_id, str) else None
        allowed: tuple[str, ...] = (r["seller_id"],) if (r is not None and sellers_only) else ()
        if r is not None and not sellers_only:
            allowed = (r["seller_id"], r["buyer_id"])
        if r is None or cmd.party_id not in allowed:
            return {"_reject": (v.UNKNOWN_RESERVATION, "no such reservation for this party")}
        if r["status"] != "ACTIVE":
            return {"_reject": (v.PROPOSAL_STALE, f"reservation is {r['status']}")}
        return r

    def _confirm(self, cmd: ConfirmReservation) -> dict[str, Any]:
        r = self._active_reservation(cmd, sellers_only=True)
        if "_reject" in r:
            return self._reject_command(cmd, *r["_reject"])
        p = self.proposals[r["proposal_id"]]
        payload = {
            "allocation_id": self._next_id("A"),
            "reservation_id": r["reservation_id"],
            "buy_order_id": r["buy_order_id"],
            "sell_order_id": r["sell_order_id"],
            "buyer_id": r["buyer_id"],
            "seller_id": r["seller_id"],
            "taker_order_id": p["taker_order_id"],
            "taker_side": p["taker_side"],
            "taker_command": "confirm",
            "quantity_kg": r["quantity_kg"],
            "price": r["price"],
            "score": p["score"],
            "breakdown": p["breakdown"],
            "risk": p["risk"],
        }
        self._emit(CONFIRMED, cmd.ts, payload)
        return {"command": "confirm", "status": "OK", "allocation": payload}

    def _release(self, cmd: ReleaseReservation) -> dict[str, Any]:
        r = self._active_reservation(cmd, sellers_only=False)
        if "_reject" in r:
            return self._reject_command(cmd, *r["_reject"])
        reason = "SELLER_RELEASED" if cmd.party_id == r["seller_id"] else "BUYER_RELEASED"
        self._emit(RELEASED, cmd.ts, _release_payload(r, reason))
        return {"command": "release", "status": "OK", "reservation_id": r["reservation_id"]}

    # ------------------------------------------------------------------ apply (the only mutator)

    def apply(self, event: Event) -> None:
        """Apply one recorded event to the state. Used live (after emitting) and in recovery.

        Raises:
            ValueError: the event's seq is not the next one (a gap or a replayed event).
        """
        if event.seq != self.seq + 1:
            raise ValueError(f"shard {self.shard_id}: event seq {event.seq} follows {self.seq}")
        self.seq = event.seq
        if event.ts > self.clock:
            self.clock = event.ts
        handler = _APPLY[event.type]
        handler(self, event)

    def _ap_accepted(self, ev: Event) -> None:
        o = self._pending
        self._pending = None
        if o is None or o.order_id != ev.payload["order"]["order_id"]:
            o = Order.from_dict(ev.payload["order"])
        self.orders[o.order_id] = o
        (self.bids if o.side == "BUY" else self.asks).add(o)
        if o.valid_until is not None:
            heapq.heappush(self._expiries, (o.valid_until, o.order_id))
        res = _place_result(o.order_id, None, "ACCEPTED", o.client_order_id)
        res["seqs"].append(ev.seq)
        self.results[(o.party_id, o.client_order_id)] = res
        if o.near_duplicate_of is not None:
            self.results[(o.party_id, o.client_order_id)]["near_duplicate_of"] = o.near_duplicate_of
        if self.spec.flag_near_duplicates:
            self.near_dups[_near_key(o.party_id, o.side, o.price, o.quantity_kg, o.lat, o.lon)] = (
                o.order_id,
                o.created_ts,
            )

    def _ap_rejected(self, ev: Event) -> None:
        p = ev.payload
        if p["party_id"] is not None and p["client_order_id"] is not None:
            res = _place_result(None, p, "REJECTED")
            res["seqs"].append(ev.seq)
            self.results[(p["party_id"], p["client_order_id"])] = res

    def _ap_noop(self, ev: Event) -> None:
        return None

    def _take(self, o: Order, qty: int, from_reserved: bool) -> None:
        if from_reserved:
            o.reserved_kg -= qty
        else:
            o.open_kg -= qty
            if o.open_kg == 0:
                (self.bids if o.side == "BUY" else self.asks).remove(o)
        o.allocated_kg += qty
        o.refresh_status()

    def _ap_allocated(self, ev: Event) -> None:
        p = ev.payload
        qty = p["quantity_kg"]
        from_reserved = p.get("reservation_id") is not None
        for oid in (p["buy_order_id"], p["sell_order_id"]):
            o = self.orders[oid]
            self._take(o, qty, from_reserved)
            o.updated_ts = ev.ts
        if p.get("taker_command") == "place":
            taker = self.orders[p["taker_order_id"]]
            res = self.results[(taker.party_id, taker.client_order_id)]
            res["allocations"].append(p)
            res["seqs"].append(ev.seq)

    def _ap_confirmed(self, ev: Event) -> None:
        self._ap_allocated(ev)
        r = self.reservations[ev.payload["reservation_id"]]
        r["status"] = "CONFIRMED"
        r["allocation_id"] = ev.payload["allocation_id"]

    def _ap_proposed(self, ev: Event) -> None:
        p = ev.payload
        prop = dict(p)
        prop["status"] = "OPEN"
        prop["ts"] = ev.ts
        self.proposals[p["proposal_id"]] = prop
        if p.get("taker_command") == "place":
            taker = self.orders[p["taker_order_id"]]
            res = self.results[(taker.party_id, taker.client_order_id)]
            res["proposals"].append(p)
            res["seqs"].append(ev.seq)

    def _ap_proposal_rejected(self, ev: Event) -> None:
        self.proposals[ev.payload["proposal_id"]]["status"] = "REJECTED"

    def _ap_reserved(self, ev: Event) -> None:
        p = ev.payload
        q = p["quantity_kg"]
        for oid in (p["buy_order_id"], p["sell_order_id"]):
            o = self.orders[oid]
            o.open_kg -= q
            o.reserved_kg += q
            if o.open_kg == 0:
                (self.bids if o.side == "BUY" else self.asks).remove(o)
            o.updated_ts = ev.ts
            o.refresh_status()
        r = dict(p)
        r["status"] = "ACTIVE"
        self.reservations[p["reservation_id"]] = r
        self.proposals[p["proposal_id"]]["status"] = "ACCEPTED"
        heapq.heappush(self._holds, (p["hold_until"], p["reservation_id"]))

    def _ap_released(self, ev: Event) -> None:
        r = self.reservations[ev.payload["reservation_id"]]
        r["status"] = "RELEASED"
        r["release_reason"] = ev.payload["reason"]
        q = r["quantity_kg"]
        for oid in (r["buy_order_id"], r["sell_order_id"]):
            o = self.orders[oid]
            o.reserved_kg -= q
            if o.status == st.CANCELLED:
                o.cancelled_kg += q
            elif o.status == st.EXPIRED:
                o.expired_kg += q
            else:
                was_resting = o.open_kg > 0
                o.open_kg += q
                if not was_resting:
                    (self.bids if o.side == "BUY" else self.asks).add_by_priority(o)
                o.refresh_status()
            o.updated_ts = ev.ts

    def _close_open(self, ev: Event, kg_field: str, status: str) -> None:
        """Move an order's open quantity ``ev.payload[kg_field]`` to that bucket and close it."""
        o = self.orders[ev.payload["order_id"]]
        q = ev.payload[kg_field]
        (self.bids if o.side == "BUY" else self.asks).remove(o)
        o.open_kg -= q
        setattr(o, kg_field, getattr(o, kg_field) + q)
        o.status = status
        o.updated_ts = ev.ts

    def _ap_cancelled(self, ev: Event) -> None:
        self._close_open(ev, "cancelled_kg", st.CANCELLED)

    def _ap_expired(self, ev: Event) -> None:
        self._close_open(ev, "expired_kg", st.EXPIRED)

    def _ap_amended(self, ev: Event) -> None:
        p = ev.payload
        o = self.orders[p["order_id"]]
        side = self.bids if o.side == "BUY" else self.asks
        delta_open = p["open_kg"] - o.open_kg
        if p["priority_lost"]:
            side.remove(o)
            o.price = p["price"]
            o.priority = p["priority"]
            o.open_kg = p["open_kg"]
            side.add(o)
        else:
            o.open_kg = p["open_kg"]
        o.quantity_kg += delta_open
        o.updated_ts = ev.ts

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a JSON-serialisable dict (restorable with :meth:`from_snapshot`)."""
        return {
            "shard_id": self.shard_id,
            "region": self.region,
            "commodity": self.commodity,
            "profile": self.profile,
            "seq": self.seq,
            "clock": self.clock,
            "orders": [o.to_dict() for o in self.orders.values()],
            "proposals": [dict(p) for p in self.proposals.values()],
            "reservations": [dict(r) for r in self.reservations.values()],
            "results": [[k[0], k[1], r] for k, r in self.results.items()],
            "near_dups": [[list(k), val[0], val[1]] for k, val in self.near_dups.items()],
        }

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> ShardEngine:
        """Rebuild an engine from :meth:`snapshot` output."""
        eng = cls(snap["region"], snap["commodity"], snap["profile"])
        eng.seq = snap["seq"]
        eng.clock = snap["clock"]
        live: list[Order] = []
        for d in snap["orders"]:
            o = Order.from_dict(d)
            eng.orders[o.order_id] = o
            if o.open_kg > 0 and o.status in (st.OPEN, st.PARTIALLY_FILLED):
                live.append(o)
            if o.valid_until is not None and o.status in (st.OPEN, st.PARTIALLY_FILLED):
                heapq.heappush(eng._expiries, (o.valid_until, o.order_id))
        for o in sorted(live, key=lambda x: x.priority):
            (eng.bids if o.side == "BUY" else eng.asks).add(o)
        eng.proposals = {p["proposal_id"]: dict(p) for p in snap["proposals"]}
        eng.reservations = {r["reservation_id"]: dict(r) for r in snap["reservations"]}
        for r in eng.reservations.values():
            if r["status"] == "ACTIVE":
                heapq.heappush(eng._holds, (r["hold_until"], r["reservation_id"]))
        eng.results = {(k0, k1): r for k0, k1, r in snap["results"]}
        eng.near_dups = {tuple(k): (oid, ts) for k, oid, ts in snap["near_dups"]}
        return eng

    # ------------------------------------------------------------------ read side

    def best_bid_ask(self) -> dict[str, Any]:
        """Best public bid/ask price (paise/kg) and the open kg at each, or None when a side is empty."""
        out: dict[str, Any] = {"shard_id": self.shard_id, "seq": self.seq}
        for name, side in (("bid", self.bids), ("ask", self.asks)):
            out[name] = None
            out[f"{name}_kg"] = 0
            for price, lvl in side.iter_levels():
                kg = sum(o.open_kg for o in lvl.values() if _anonymous_view(o))
                if kg:
                    out[name] = price
                    out[f"{name}_kg"] = kg
                    break
        return out

    def depth(self, levels: int = 10) -> dict[str, Any]:
        """Aggregated public depth: ``{"bids": [[price, kg, orders], ...], "asks": [...]}`` best first."""
        out: dict[str, Any] = {"shard_id": self.shard_id, "seq": self.seq}
        for name, side in (("bids", self.bids), ("asks", self.asks)):
            rows: list[list[int]] = []
            for price, lvl in side.iter_levels():
                pub = [o for o in lvl.values() if _anonymous_view(o)]
                if pub:
                    rows.append([price, sum(o.open_kg for o in pub), len(pub)])
                    if len(rows) >= levels:
                        break
            out[name] = rows
        return out

    def open_orders(self, party_id: str) -> list[dict[str, Any]]:
        """A party's orders with open or reserved quantity, oldest first."""
        return [o.to_dict() for o in self.orders.values() if o.party_id == party_id and o.is_live]

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        o = self.orders.get(order_id)
        return o.to_dict() if o is not None else None

    def search(self, query: PlaceOrder, limit: int = 20) -> dict[str, Any]:
        """Ranked candidates for a hypothetical order, without placing anything or recording events.

        Returns ``{"status": "OK", "candidates": [...]}`` (each with order id, price, open kg, quality,
        location, score and breakdown; counterparties are not disclosed) or a REJECTED status with a
        reason code for an invalid query.
        """
        problem = v.check_place(query, self._spec_of(query.commodity), self.region, self.commodity)
        if problem is not None:
            return {"status": "REJECTED", "reason": problem[0], "detail": problem[1], "candidates": []}
        taker = self._order_from_command(query, "search", self.seq + 1, None)
        cands: list[dict[str, Any]] = []
        for f in self._ranked(taker, decide=False):
            if len(cands) >= max(0, min(int(limit), 200)):
                break
            r = f.resting
            cands.append(
                {
                    "order_id": r.order_id,
                    "side": r.side,
                    "price": r.price,
                    "open_kg": r.open_kg,
                    "quality": dict(r.quality) if r.side == "SELL" else {},
                    "quality_ranges": {k: list(x) for k, x in r.quality_ranges.items()},
                    "region": r.region,
                    "city": r.city,
                    "district": r.district,
                    "min_order_kg": r.min_order_kg,
                    "score": f.score,
                    "breakdown": f.breakdown,
                }
            )
        return {"status": "OK", "candidates": cands}

    def stats(self) -> dict[str, Any]:
        """Counters for operators: seq, orders resting per side, live orders, active reservations."""
        return {
            "shard_id": self.shard_id,
            "seq": self.seq,
            "bids": len(self.bids),
            "asks": len(self.asks),
            "book_size": len(self.bids) + len(self.asks),
            "orders_total": len(self.orders),
            "active_reservations": sum(1 for r in self.reservations.values() if r["status"] == "ACTIVE"),
        }


def _near_key(party: str, side: str, price: int, qty: int, lat: float, lon: float) -> tuple[Any, ...]:
    return (party, side, price, qty, round(float(lat), 4), round(float(lon), 4))


def _place_result(
    order_id: str | None, rejection: dict[str, Any] | None, status: str, coid: str | None = None
) -> dict[str, Any]:
    return {
        "command": "place",
        "status": status,
        "order_id": order_id,
        "client_order_id": coid if rejection is None else rejection.get("client_order_id"),
        "reason": None if rejection is None else rejection["reason"],
        "detail": None if rejection is None else rejection["detail"],
        "allocations": [],
        "proposals": [],
        "seqs": [],
        "duplicate": False,
    }


def _release_payload(r: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "reservation_id": r["reservation_id"],
        "reason": reason,
        "buy_order_id": r["buy_order_id"],
        "sell_order_id": r["sell_order_id"],
        "buyer_id": r["buyer_id"],
        "seller_id": r["seller_id"],
        "quantity_kg": r["quantity_kg"],
        "price": r["price"],
    }


_APPLY = {
    ORDER_ACCEPTED: ShardEngine._ap_accepted,
    ORDER_REJECTED: ShardEngine._ap_rejected,
    COMMAND_REJECTED: ShardEngine._ap_noop,
    ALLOCATED: ShardEngine._ap_allocated,
    CONFIRMED: ShardEngine._ap_confirmed,
    PROPOSED: ShardEngine._ap_proposed,
    PROPOSAL_REJECTED: ShardEngine._ap_proposal_rejected,
    RESERVED: ShardEngine._ap_reserved,
    RELEASED: ShardEngine._ap_released,
    CANCELLED: ShardEngine._ap_cancelled,
    EXPIRED: ShardEngine._ap_expired,
    AMENDED: ShardEngine._ap_amended,
}
