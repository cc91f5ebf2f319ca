"""The market reference of a shard from the shipped Agmarknet files: one source for the price
bands and circuit breaker (:mod:`actors.shard_actor` records it as ``MARKET_REFERENCE``) and the
console's ``GET /v1/market/{region}/{commodity}/reference`` (docs/matching.md, "Price bands";
docs/console.md). The rule itself is :func:`actors.core.risk.market.state_reference`; this module
picks the commodity's files, reads them with :mod:`persistence.agmarknet` and adds the latest
day's figures as context. Prices paise/kg (1 Rs./quintal = 1 paise/kg).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

from actors.core.commodities import COMMODITIES, canonical_commodity
from actors.core.regions import current_code
from actors.core.risk.market import REFERENCE_DAYS, state_reference
from persistence.agmarknet import default_agmarknet_paths, load_price_points


@dataclass(frozen=True, slots=True)
class ReferenceDetail:
    """A shard's market reference with the figures it comes from, all paise/kg.

    ``price``: :func:`actors.core.risk.market.state_reference` (low median of the state's modal
    prices over ``window_days`` to ``day``; the price bands' and circuit breaker's reference);
    ``samples``: modal prices in that window; ``day``: the latest report; ``markets``, ``low``,
    ``high``: that day's market rows and their lowest/highest modal price (context only)."""

    price: int
    day: date
    samples: int
    markets: int
    low: int
    high: int
    window_days: int = REFERENCE_DAYS


@functools.lru_cache(maxsize=64)
def reference_detail(region: str, commodity: str, data_dir: str | None = None) -> ReferenceDetail | None:
    """The market reference of ``region`` (ISO 3166-2) and ``commodity`` from the shipped
    Agmarknet files, with its figures; None when the commodity has no market in ``region``
    (``traded_in``) or no file has its prices. Reads only the commodity's files
    (``trinetra_<commodity>_...csv``; files named otherwise are read too); cached per process."""
    spec = COMMODITIES.get(canonical_commodity(commodity) or "")
    if spec is None or region not in spec.traded_in:
        return None
    paths = []
    for path in default_agmarknet_paths(data_dir):
        parts = path.stem.split("_")
        named = canonical_commodity(parts[1]) if len(parts) > 1 else None
        if named is None or named == spec.name:
            paths.append(path)
    points = [
        p for p in load_price_points(paths) if p.commodity == spec.name and current_code(p.region) == region
    ]
    ref = state_reference(points, spec.name, region)
    if ref is None:
        return None
    price, last = ref
    latest = [p.price for p in points if p.day == last]
    window = sum(1 for p in points if (last - p.day).days < REFERENCE_DAYS)
    return ReferenceDetail(price, last, window, len(latest), min(latest), max(latest))


def market_reference(region: str, commodity: str, data_dir: str | None = None) -> tuple[int, str] | None:
    """``(price paise/kg, ISO day)``: the shard's market reference (:func:`reference_detail`), or
    None when there is none."""
    d = reference_detail(region, commodity, data_dir)
    return None if d is None else (d.price, d.day.isoformat())
