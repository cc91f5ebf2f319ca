"""The quick validity test of a place command: :func:`place_ok`, one flat function for the common
case (plain ASCII text, the shard's own commodity and region, no allow-list or linked parties), run
once per order on the place path. True only when :func:`actors.core.validation.check_place` would
accept the command; False means "ask check_place", which names the problem (or accepts an unusual
valid command). Bounds and codes live in :mod:`actors.core.validation`.
"""

from __future__ import annotations

import math
from typing import Any

from actors.core.commands import Intent, PlaceOrder, Profile, Side, Visibility
from actors.core.commodities import CommoditySpec
from actors.core.validation import (
    MAX_DISTANCE_KM,
    MAX_ID_LEN,
    MAX_PLACE_LEN,
    MAX_PRICE,
    MAX_QUANTITY_KG,
    MAX_TS,
    TEXT_BOUNDS,
    text_ok,
)

_INF = math.inf

_SIDE_VALUES = ("BUY", "SELL")
_VISIBILITY_VALUES = ("PUBLIC", "PRIVATE")
_INTENT_VALUES = ("DIRECT_BUY", "NEGOTIATE")
_PROFILE_VALUES = ("price_time", "quality")
_NUMBER = (int, float)
_SEQUENCE = (tuple, list)
_BOUNDS_OF: dict[str, dict[str, tuple[float, float]] | None] = {}


def _param_bounds(spec: CommoditySpec) -> dict[str, tuple[float, float]] | None:
    """``{param: (low, high)}`` of ``spec`` (cached), or None when a parameter name would fail the
    text check (then the quick check leaves quality to ``check_place``)."""
    if spec.name not in _BOUNDS_OF:
        safe = all(text_ok(p.name, TEXT_BOUNDS["quality"]) for p in spec.params)
        _BOUNDS_OF[spec.name] = {p.name: (p.low, p.high) for p in spec.params} if safe else None
    return _BOUNDS_OF[spec.name]


def _quality_ok(cmd: PlaceOrder, spec: CommoditySpec, sell: bool) -> bool:
    """The common case of the quality checks of ``check_place``: known parameters, numbers within
    the parameter's bounds (availability) or finite ranges with targets inside them."""
    bounds = _param_bounds(spec)
    if bounds is None:
        return False
    if sell:
        if cmd.quality_ranges or cmd.quality_target:
            return False
        for k, x in cmd.quality.items():
            b = bounds.get(k) if k.__class__ is str else None
            if b is None or x.__class__ not in _NUMBER or not b[0] <= x <= b[1]:
                return False
        return True
    if cmd.quality:
        return False
    ranges = cmd.quality_ranges
    for k, r in ranges.items():
        if k.__class__ is not str or k not in bounds or r.__class__ not in _SEQUENCE or len(r) != 2:
            return False
        lo, hi = r
        if lo.__class__ not in _NUMBER or hi.__class__ not in _NUMBER or not -_INF < lo <= hi < _INF:
            return False
    for k, x in cmd.quality_target.items():
        rng = ranges.get(k) if k.__class__ is str else None
        if rng is None or x.__class__ not in _NUMBER or not rng[0] <= x <= rng[1]:
            return False
    return True


def _short_text(s: Any, bound: int) -> bool:
    return s.__class__ is str and len(s) <= bound and s.isascii() and s.isprintable()


def _member(x: Any, enum: type, values: tuple[str, ...]) -> bool:
    return x.__class__ in (str, enum) and x in values


def place_ok(cmd: PlaceOrder, spec: CommoditySpec, shard_region: str) -> bool:
    """Whether a place command is valid for the shard of ``spec`` / ``shard_region`` (see the
    module docstring: True only when ``check_place`` would accept it; False: ask ``check_place``).
    """
    ts = cmd.ts
    q = cmd.quantity_kg
    price = cmd.price
    lat = cmd.lat
    lon = cmd.lon
    side = cmd.side
    if not (
        ts.__class__ is int
        and 0 <= ts < MAX_TS
        and q.__class__ is int
        and 0 < q <= MAX_QUANTITY_KG
        and price.__class__ is int
        and 0 < price <= MAX_PRICE
        and lat.__class__ in _NUMBER
        and -90 <= lat <= 90
        and lon.__class__ in _NUMBER
        and -180 <= lon <= 180
        and side.__class__ in (str, Side)
        and side in _SIDE_VALUES
        and cmd.commodity.__class__ is str
        and cmd.commodity == spec.name
        and cmd.region.__class__ is str
        and cmd.region == shard_region
        and _short_text(cmd.party_id, MAX_ID_LEN)
        and cmd.party_id
        and _short_text(cmd.client_order_id, MAX_ID_LEN)
        and cmd.client_order_id
    ):
        return False
    vis = cmd.visibility
    mn = cmd.min_order_kg
    vu = cmd.valid_until
    dist = cmd.max_distance_km
    if not (
        vis.__class__ in (str, Visibility)
        and vis in _VISIBILITY_VALUES
        and cmd.allow_list.__class__ in _SEQUENCE
        and not cmd.allow_list
        and cmd.linked_parties.__class__ in _SEQUENCE
        and not cmd.linked_parties
        and mn.__class__ is int
        and 0 <= mn <= q
        and cmd.allow_partial.__class__ is bool
        and (vu is None or (vu.__class__ is int and ts < vu < MAX_TS))
        and (dist is None or (dist.__class__ in _NUMBER and 0 <= dist <= MAX_DISTANCE_KM))
        and (cmd.city is None or _short_text(cmd.city, MAX_PLACE_LEN))
        and (cmd.district is None or _short_text(cmd.district, MAX_PLACE_LEN))
        and (cmd.profile is None or _member(cmd.profile, Profile, _PROFILE_VALUES))
    ):
        return False
    intent = cmd.intent
    if intent is not None and not (
        side == "BUY" and intent.__class__ in (str, Intent) and intent in _INTENT_VALUES
    ):
        return False
    qual, ranges, target = cmd.quality, cmd.quality_ranges, cmd.quality_target
    if not (qual.__class__ is dict and ranges.__class__ is dict and target.__class__ is dict):
        return False
    if qual or ranges or target:  # keys must be parameter names, which are plain text
        return _quality_ok(cmd, spec, side == "SELL")
    return True
