"""Candidate ranking and fill planning of a shard (ARCHITECTURE.md, "Matching semantics").

Hard filters (:func:`actors.core.scoring.hard_filters`; book scans use its per-taker form
:func:`~actors.core.scoring.taker_filter`) and risk decide who may trade; the profile ranks
(``price_time``: best price then time; ``quality``: weighted score, ties to the earliest); the taker then
takes candidates best-first at the **resting** order's price until it is covered.

Quantity rules of a fill of ``q`` kg, checked for both orders against their **real open quantity**
at that moment: ``q`` equals the order's open kg, or ``q >= min_order_kg`` and (for a resting order)
``allow_partial``. Proposals (NEGOTIATE) reserve nothing, so they never lower an order's open kg:
they only use up the taker's quantity to cover in this plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from actors.core.book import BookSide
from actors.core.events import ALLOCATED, PROPOSED, Allocated, Proposed
from actors.core.geo import haversine_km
from actors.core.orders import Order
from actors.core.risk.types import PASS_DECISION, Outcome, RiskDecision
from actors.core.scoring import (
    closeness,
    distance_component,
    distance_limit,
    hard_filters,
    price_component,
    quality_terms,
    taker_filter,
)
from actors.core.state import ShardState

_PASS_RISK = PASS_DECISION.to_dict()
_PT_BREAKDOWN = {"profile": "price_time"}  # shared by every price-time fill (never mutated)
NEGOTIATE = "NEGOTIATE"


class Fill:
    """A planned allocation or proposal of one taker against one resting order (``qty`` kg).

    A quality-profile candidate keeps its score components in ``parts``
    ``(price, quality, distance, distance_km, trust, penalty, weights)`` and builds its
    ``breakdown`` dict only when asked (most scanned candidates are never filled)."""

    __slots__ = ("resting", "qty", "decision", "score", "_breakdown", "parts")

    def __init__(
        self,
        resting: Order,
        qty: int,
        decision: RiskDecision,
        score: float,
        breakdown: dict[str, Any] | None,
        parts: tuple[Any, ...] | None = None,
    ):
        self.resting = resting
        self.qty = qty
        self.decision = decision
        self.score = score
        self._breakdown = breakdown
        self.parts = parts

    @property
    def breakdown(self) -> dict[str, Any]:
        """The score breakdown recorded with the fill (components rounded to 6 decimals, km to 3)."""
        b = self._breakdown
        if b is None:
            assert self.parts is not None
            sp, sq, sd, dist, trust, penalty, weights = self.parts
            b = self._breakdown = {
                "profile": "quality",
                "price": round(sp, 6),
                "quality": round(sq, 6),
                "distance": round(sd, 6),
                "distance_km": round(dist, 3),
                "trust": round(trust, 6),
                "penalty": round(penalty, 6),
                "weights": list(weights),
            }
        return b


def fill_qty(
    taker: Order,
    resting: Order,
    remaining: int,
    taker_open: int,
    negotiate: bool,
    credit: dict[str, int],
) -> int:
    """Kilograms the pair can trade, 0 when min-quantity / all-or-none / credit rule out a fill.

    ``remaining``: what the taker still has to cover in this plan (kg); ``taker_open``: the taker's
    real open kg when this fill happens (``remaining`` plus the kg of earlier proposals of the plan).
    An allocation is checked against ``taker_open``; a proposal, which changes no open quantity,
    against ``remaining``. ``credit``: paise left per buyer (absent = unlimited).
    """
    buy, sell = (taker, resting) if taker.side == "BUY" else (resting, taker)
    q = remaining if remaining < resting.open_kg else resting.open_kg
    if not negotiate and buy.party_id in credit:
        q = min(q, credit[buy.party_id] // resting.price)
    if q <= 0:
        return 0
    own_open = remaining if negotiate else taker_open
    for o in (buy, sell):
        o_open = own_open if o is taker else o.open_kg
        if q < o_open and (q < o.min_order_kg or not (o.allow_partial or o is taker)):
            return 0
    return q


class Matching(ShardState):
    """Ranking (:meth:`_ranked`), planning (:meth:`_plan_fills`) and execution (:meth:`_match`)."""

    prune_quality_scan = True  # stop scanning price levels that cannot outrank (see _quality_ranked)

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

    def _price_time(self, taker: Order, opposite: BookSide, decide: bool) -> Iterator[Fill]:
        """Price-time candidates, lazily: best price, then time priority. The pair test is
        :func:`hard_filters` itself: the scan is lazy and usually stops after the first few resting
        orders, and ``bench core --profile price_time`` showed no difference beyond its noise either
        way (docs/matching.md, "The engine's hot path")."""
        taker_is_buy = taker.side == "BUY"
        for resting in opposite.crossing(taker.price):
            buy, sell = (taker, resting) if taker_is_buy else (resting, taker)
            if hard_filters(buy, sell) is None:
                continue
            decision = self._decision(taker, resting) if decide else PASS_DECISION
            if decision is None or decision.outcome == Outcome.BLOCK:
                continue
            yield Fill(resting, 0, decision, 1.0, _PT_BREAKDOWN)

    def _ranked(self, taker: Order, decide: bool = True) -> Iterable[Fill]:
        """Candidates for ``taker`` best-first (qty not yet set), after hard filters and risk:
        a lazy iterator for ``price_time``, a scored and sorted list for ``quality``."""
        if (taker.profile or self.profile) == "price_time":
            return self._price_time(taker, self.asks if taker.side == "BUY" else self.bids, decide)
        return self._quality_ranked(taker, decide, None)[0]

    def _quality_ranked(
        self, taker: Order, decide: bool, need_kg: int | None
    ) -> tuple[list[Fill], float | None]:
        """Quality-profile candidates, scored and sorted best-first.

        With ``need_kg``, price levels are scanned best-first and the scan stops (``pruned``) once
        candidates scoring strictly above the best score any further level could reach (its price
        component plus full quality, distance and trust) already hold ``need_kg``: no unscanned
        candidate could then outrank them. Returns ``(candidates, pruned)``.
        """
        taker_is_buy = taker.side == "BUY"
        opposite = self.asks if taker_is_buy else self.bids
        spec = self.spec
        w = spec.weights
        wp, wq, wd, wt = w.price, w.quality, w.distance, w.trust
        band = spec.price_band
        limit = taker.price
        min_score = spec.min_score
        rest_bound = wq + wd + wt
        weights = (wp, wq, wd, wt)
        terms = quality_terms(taker, spec) if taker_is_buy else None
        pass_all = not decide or (self._verdicts.pass_all and not self._verdicts.decisions)
        passes = taker_filter(taker)
        out: list[Fill] = []
        pruned: float | None = None
        for price, level in opposite.crossing_levels(limit):
            if need_kg is not None and out:
                bound = wp * price_component(taker, price, band) + rest_bound + 1e-6
                cover = 0
                for f in out:
                    if f.score > bound:
                        cover += f.resting.open_kg
                if cover >= need_kg:
                    pruned = bound
                    break
            for resting in level.values():
                dist = passes(resting)
                if dist is None:
                    continue
                buy, sell = (taker, resting) if taker_is_buy else (resting, taker)
                decision = PASS_DECISION if pass_all else self._decision(taker, resting)
                if decision is None or decision.outcome == Outcome.BLOCK:
                    continue
                if dist < 0:
                    dist = haversine_km(buy.lat, buy.lon, sell.lat, sell.lon)
                rp = resting.price  # price_component, inlined
                gain = (limit - rp) if taker_is_buy else (rp - limit)
                sp = 0.0 if gain <= 0 else min(1.0, gain / (limit * band))
                sq = closeness(terms if terms is not None else quality_terms(buy, spec), sell.quality)
                sd = distance_component(dist, distance_limit(buy, sell), spec)
                trust = min(1.0, max(0.0, decision.trust))
                total = wp * sp + wq * sq + wd * sd + wt * trust
                penalty = decision.penalty if decision.outcome == Outcome.WARN else 0.0
                total *= 1.0 - penalty
                if total < min_score:
                    continue
                parts = (sp, sq, sd, dist, trust, penalty, weights)
                out.append(Fill(resting, 0, decision, round(total, 6), None, parts))
        out.sort(key=lambda f: (-f.score, f.resting.priority))
        return out, pruned

    def _plan_fills(self, taker: Order, ranked: Iterable[Fill]) -> tuple[list[Fill], int, dict[str, int]]:
        """Take candidates best-first until the taker is covered. Returns the fills, the taker's
        quantity left over, and the credit left per buyer (a copy: nothing is committed here)."""
        credit = dict(self._credit_left) if self._credit_left else self._credit_left
        plan: list[Fill] = []
        remaining = taker.open_kg
        taker_open = taker.open_kg  # the taker's real open kg: proposals do not lower it
        taker_negotiates = taker.intent == NEGOTIATE
        for fill in ranked:
            resting = fill.resting
            negotiate = taker_negotiates or resting.intent == NEGOTIATE
            q = fill_qty(taker, resting, remaining, taker_open, negotiate, credit)
            if q <= 0:
                continue
            if not negotiate:
                taker_open -= q
                buyer = taker.party_id if taker.side == "BUY" else resting.party_id
                if buyer in credit:
                    credit[buyer] -= q * resting.price
            fill.qty = q
            plan.append(fill)
            remaining -= q
            if remaining == 0:
                break
        return plan, remaining, credit

    def _crosses(self, taker: Order) -> bool:
        """Whether the opposite side's best price crosses ``taker``'s limit (both profiles only
        consider crossing levels, so a taker that does not cross has no candidate)."""
        if taker.side == "BUY":
            best = self.asks.best_price()
            return best is not None and best <= taker.price
        best = self.bids.best_price()
        return best is not None and best >= taker.price

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
        if remaining > 0 and not taker.allow_partial and taker.intent != NEGOTIATE:
            return  # all-or-none: trade nothing (the credit copy is dropped)
        self._credit_left = credit
        taker_is_buy = taker.side == "BUY"
        for fill in plan:
            resting = fill.resting
            buy, sell = (taker, resting) if taker_is_buy else (resting, taker)
            risk = _PASS_RISK if fill.decision is PASS_DECISION else fill.decision.to_dict()
            common = (
                buy.order_id,
                sell.order_id,
                buy.party_id,
                sell.party_id,
                taker.order_id,
                taker.side,
                via,
                fill.qty,
                resting.price,
                fill.score,
                fill.breakdown,
                risk,
            )
            if buy.intent == NEGOTIATE:
                self._emit(PROPOSED, ts, Proposed(*common, self._next_id("P")))
            else:
                ev = self._emit(ALLOCATED, ts, Allocated(*common, self._next_id("A"), None))
                self._credit_used[buy.party_id] = (
                    self._credit_used.get(buy.party_id, 0) + fill.qty * resting.price
                )
                if self._breaker_tripped(ev, ts):
                    break  # the shard is halted: the taker's other fills are not made

    def _plan_candidates(
        self, taker: Order, taker_ref: str, incoming: list[tuple[str, Order]]
    ) -> Iterable[tuple[str, Order]]:
        """``(ref, order)`` of every order ``taker`` could meet: the book's candidates (no risk asked)
        and the batch's own new orders that pass the hard filters (used by ``plan``)."""
        for fill in self._ranked(taker, decide=False):
            yield fill.resting.order_id, fill.resting
        passes = taker_filter(taker)
        for ref, other in incoming:
            if ref == taker_ref or other.side == taker.side:
                continue
            if passes(other) is not None:
                yield ref, other
