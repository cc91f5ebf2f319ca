"""Hard filters and candidate scores for matching (ARCHITECTURE.md, "Matching semantics").

All functions are pure and take a requirement (``buy``) and an availability (``sell``) as
:class:`actors.core.orders.Order`. Scores are floats in [0, 1]; the quality-profile total is the
weighted sum of components with the commodity's :class:`~actors.core.commodities.ScoringWeights`.
"""

from __future__ import annotations

from collections.abc import Callable

from actors.core.commodities import CommoditySpec
from actors.core.geo import haversine_km
from actors.core.orders import Order
from actors.core.visibility import PUBLIC, visible_to


def parties_may_trade(buy: Order, sell: Order) -> bool:
    """Self-trade and linked-party prevention, plus visibility (PUBLIC, or PRIVATE with the other
    party on the allow-list), checked both ways."""
    bp, sp = buy.party_id, sell.party_id
    if bp == sp or bp in sell.linked_parties or sp in buy.linked_parties:
        return False
    return visible_to(sell.visibility, sell.allow_list, sp, bp) and visible_to(
        buy.visibility, buy.allow_list, bp, sp
    )


def quality_within(buy: Order, sell: Order) -> bool:
    """Every parameter the requirement ranges is stated by the availability and within range."""
    sq = sell.quality
    for name, (lo, hi) in buy.quality_ranges.items():
        v = sq.get(name)
        if v is None or v < lo or v > hi:
            return False
    return True


def distance_limit(buy: Order, sell: Order) -> float | None:
    """The tighter of the two orders' ``max_distance_km``, or None when neither sets one."""
    a, b = buy.max_distance_km, sell.max_distance_km
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


def hard_filters(buy: Order, sell: Order) -> float | None:
    """None when the pair fails a hard filter, else the haversine distance in km (-1.0 when no
    distance limit applies and the distance was not needed)."""
    if sell.price > buy.price:
        return None
    if (
        buy.visibility == PUBLIC
        and sell.visibility == PUBLIC
        and not buy.linked_parties
        and not sell.linked_parties
    ):  # the common case of parties_may_trade
        if buy.party_id == sell.party_id:
            return None
    elif not parties_may_trade(buy, sell):
        return None
    if buy.quality_ranges and not quality_within(buy, sell):
        return None
    a, b = buy.max_distance_km, sell.max_distance_km
    if a is None:
        if b is None:
            return -1.0
        limit = b
    else:
        limit = a if b is None or a < b else b
    d = haversine_km(buy.lat, buy.lon, sell.lat, sell.lon)
    return d if d <= limit else None


def taker_filter(taker: Order) -> Callable[[Order], float | None]:
    """:func:`hard_filters` for one taker against resting orders of the other side:
    ``f(resting) == hard_filters(buy, sell)`` with ``(buy, sell)`` the pair in side order, and every
    test's taker half (party, visibility, ranges or values, location, distance limit) read once
    instead of once per resting order. The long book scans of matching call it for every candidate.
    """
    is_buy = taker.side == "BUY"
    t_party = taker.party_id
    t_open = taker.visibility == PUBLIC and not taker.linked_parties
    t_price, t_lat, t_lon, t_limit = taker.price, taker.lat, taker.lon, taker.max_distance_km
    t_ranges = tuple(taker.quality_ranges.items()) if is_buy else ()
    t_quality = taker.quality

    def passes(other: Order) -> float | None:
        if (other.price > t_price) if is_buy else (t_price > other.price):
            return None
        if t_open and other.visibility == PUBLIC and not other.linked_parties:
            if other.party_id == t_party:
                return None
        elif not parties_may_trade(taker, other):  # symmetric in its two orders
            return None
        if is_buy:  # the requirement's ranges against the availability's values
            values = other.quality
            for name, (lo, hi) in t_ranges:
                v = values.get(name)
                if v is None or v < lo or v > hi:
                    return None
        elif other.quality_ranges:
            for name, (lo, hi) in other.quality_ranges.items():
                v = t_quality.get(name)
                if v is None or v < lo or v > hi:
                    return None
        o_limit = other.max_distance_km
        if t_limit is None:
            if o_limit is None:
                return -1.0
            limit = o_limit
        else:
            limit = t_limit if o_limit is None or t_limit < o_limit else o_limit
        if is_buy:
            d = haversine_km(t_lat, t_lon, other.lat, other.lon)
        else:
            d = haversine_km(other.lat, other.lon, t_lat, t_lon)
        return d if d <= limit else None

    return passes


QualityTerms = tuple[tuple[tuple[str, float, float, float, float], ...], float]


def quality_terms(buy: Order, spec: CommoditySpec) -> QualityTerms:
    """A requirement's closeness terms ``((param, low, high, target, weight), ...)`` and their
    weight sum, computed once per requirement (see :func:`closeness`)."""
    terms = []
    wsum = 0.0
    target = buy.quality_target
    for name, (lo, hi) in buy.quality_ranges.items():
        param = spec.param(name)
        w = param.weight if param is not None else 1.0
        terms.append((name, lo, hi, target.get(name, (lo + hi) / 2.0), w))
        wsum += w
    return tuple(terms), wsum


def closeness(terms: QualityTerms, quality: dict[str, float]) -> float:
    """Weighted closeness in [0, 1] of an availability's ``quality`` values to a requirement's
    :func:`quality_terms`. Per parameter: 1 at the target (default: range midpoint), falling
    linearly to 0 at the range edge on that side. 1.0 when no ranges are given."""
    items, wsum = terms
    if not items:
        return 1.0
    total = 0.0
    for name, lo, hi, t, w in items:
        v = quality.get(name, lo)
        span = (hi - t) if v >= t else (t - lo)
        c = 1.0 if span <= 0 else max(0.0, 1.0 - abs(v - t) / span)
        total += w * c
    return total / wsum if wsum > 0 else 1.0


def quality_closeness(buy: Order, sell: Order, spec: CommoditySpec) -> float:
    """Weighted closeness in [0, 1] of the availability's values to the requirement's targets,
    weighted by the spec's parameter weights (:func:`closeness` of :func:`quality_terms`)."""
    return closeness(quality_terms(buy, spec), sell.quality)


def price_component(taker: Order, resting_price: int, band: float) -> float:
    """Price competitiveness in [0, 1] from the taker's view: improvement on its limit as a fraction
    of ``band`` x limit (``band`` from the commodity spec, e.g. 10%)."""
    limit = taker.price
    gain = (limit - resting_price) if taker.side == "BUY" else (resting_price - limit)
    if gain <= 0:
        return 0.0
    return min(1.0, gain / (limit * band))


def distance_component(distance_km: float, limit_km: float | None, spec: CommoditySpec) -> float:
    """1 at 0 km falling linearly to 0 at the distance limit (or the spec's reference distance)."""
    ref = limit_km if limit_km else spec.reference_distance_km
    return max(0.0, 1.0 - distance_km / ref) if ref > 0 else 1.0
