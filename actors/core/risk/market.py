"""Market price reference per (commodity, region): robust statistics of recent trade prices.

Seeded from the real Agmarknet mandi price series in ``data/agmarknet/*.csv`` (modal price per market
and day) and then fed the prices of the exchange's own allocations, so the reference follows the
market. Agmarknet quotes Rs./Quintal; 1 Rs./quintal is exactly 1 paise/kg.

Statistics are robust: median and MAD (median absolute deviation), and the modified z-score of
Iglewicz and Hoaglin (1993), ``z = 0.6745 * (x - median) / MAD``, where 0.6745 makes MAD consistent
with the standard deviation of a normal distribution and ``|z| > 3.5`` is their outlier threshold.

Pure: the price points come in as data (``persistence.agmarknet.load_price_points`` reads the files).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from actors.core.commodities import canonical_commodity
from actors.core.regions import current_code

# 0.6745 = the 0.75 quantile of the standard normal: MAD / 0.6745 estimates sigma (Iglewicz & Hoaglin).
MAD_CONSISTENCY = 0.6745


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One observed price: commodity (canonical), region (ISO 3166-2), day, price paise/kg."""

    commodity: str
    region: str
    day: date
    price: int


@dataclass(frozen=True, slots=True)
class PriceStats:
    """Robust statistics of one series: median and MAD in paise/kg, ``n`` observations."""

    median: float
    mad: float
    n: int

    def robust_z(self, price: float, mad_floor_fraction: float = 0.01) -> float:
        """Modified z-score of ``price`` (paise/kg): ``0.6745 (price - median) / MAD``.

        MAD is floored at ``mad_floor_fraction`` of the median so that a flat series (all prices
        equal, common for small mandis) does not make every other price infinitely anomalous.
        """
        mad = max(self.mad, abs(self.median) * mad_floor_fraction, 1.0)
        return MAD_CONSISTENCY * (price - self.median) / mad


class _Series:
    __slots__ = ("prices", "_stats")

    def __init__(self, window: int) -> None:
        self.prices: deque[int] = deque(maxlen=window)
        self._stats: PriceStats | None = None

    def add(self, price: int) -> None:
        self.prices.append(price)
        self._stats = None

    def stats(self) -> PriceStats:
        if self._stats is None:
            values = list(self.prices)
            med = statistics.median(values)
            mad = statistics.median(abs(v - med) for v in values)
            self._stats = PriceStats(float(med), float(mad), len(values))
        return self._stats


class MarketReference:
    """Rolling robust price reference per (commodity, region) and per commodity (all regions).

    Each series keeps the latest ``window`` prices (paise/kg). :meth:`observe` adds a trade price
    (an allocation); :meth:`stats` answers the (commodity, region) series when it has at least
    ``min_samples`` prices, else the commodity-wide series, else None.
    """

    def __init__(self, window: int = 500, min_samples: int = 20) -> None:
        self.window = window
        self.min_samples = min_samples
        self._series: dict[tuple[str, str], _Series] = {}
        self._keys: dict[tuple[str, str], tuple[tuple[str, str], tuple[str, str]]] = {}

    def _add(self, key: tuple[str, str], price: int) -> None:
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self.window)
        series.add(price)

    def observe(self, commodity: str, region: str, price: int) -> None:
        """Record a trade price (paise/kg) for ``commodity`` in ``region`` (ISO 3166-2)."""
        if price <= 0:
            return
        commodity = canonical_commodity(commodity) or commodity.strip().lower()
        self._add((commodity, current_code(region)), price)
        self._add((commodity, "*"), price)

    def seed(self, points: Iterable[PricePoint]) -> MarketReference:
        """Observe ``points`` in order (oldest first); returns self."""
        for p in points:
            self.observe(p.commodity, p.region, p.price)
        return self

    def stats(self, commodity: str, region: str) -> PriceStats | None:
        """Stats for the pair, falling back to the commodity across regions; None when unknown."""
        keys = self._keys.get((commodity, region))
        if keys is None:
            canon = canonical_commodity(commodity) or commodity.strip().lower()
            keys = self._keys[(commodity, region)] = ((canon, current_code(region)), (canon, "*"))
        for key in keys:
            series = self._series.get(key)
            if series is not None and len(series.prices) >= self.min_samples:
                return series.stats()
        return None

    def keys(self) -> list[tuple[str, str]]:
        """Known (commodity, region) series; region ``*`` is the commodity-wide series."""
        return sorted(self._series)


REFERENCE_DAYS = 30


def state_reference(
    points: Iterable[PricePoint], commodity: str, region: str, days: int = REFERENCE_DAYS
) -> tuple[int, date] | None:
    """The market reference of a shard: the median (low median, an observed price) of the modal
    prices (paise/kg) of ``commodity`` in ``region`` over the ``days`` days up to its latest report,
    with that latest day; None when the state has no price.

    Why a month and not the last day alone: a state's last report often holds one or two markets
    (docs/matching.md, "Price bands"), and quotes between markets of a state differ by more than the
    band (kapas against lint, quality), so one market's day would make a noisy reference."""
    canon = canonical_commodity(commodity) or commodity
    mine = [p for p in points if p.commodity == canon and current_code(p.region) == region]
    if not mine:
        return None
    last = max(p.day for p in mine)
    recent = [p.price for p in mine if (last - p.day).days < days]
    return int(statistics.median_low(recent)), last
