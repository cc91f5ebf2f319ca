"""Market price reference per (commodity, region): robust statistics of recent trade prices.

Seeded from the real Agmarknet mandi price series in ``data/agmarknet/*.csv`` (modal price per market
and day) and then fed the prices of the exchange's own allocations, so the reference follows the
market. Agmarknet quotes Rs./Quintal with thousands commas ("7,700.00"); 1 Rs./quintal is exactly
1 paise/kg, so a quoted price is used as paise/kg after removing the commas.

Statistics are robust: median and MAD (median absolute deviation), and the modified z-score of
Iglewicz and Hoaglin (1993), ``z = 0.6745 * (x - median) / MAD``, where 0.6745 makes MAD consistent
with the standard deviation of a normal distribution and ``|z| > 3.5`` is their outlier threshold.

Pure: no I/O beyond reading the CSV files given to :func:`load_agmarknet`.
"""

from __future__ import annotations

import csv
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from actors.commodities import canonical_commodity

# ISO 3166-2:IN subdivision codes (current codes after the 2019 and 2023 ISO newsletters:
# Odisha IN-OD, Chhattisgarh IN-CG, Telangana IN-TS, Uttarakhand IN-UK). Keys are lower-case and include
# the spellings used by Agmarknet (e.g. "Chattisgarh", "NCT of Delhi").
STATE_TO_REGION: dict[str, str] = {
    "andaman and nicobar islands": "IN-AN",
    "andhra pradesh": "IN-AP",
    "arunachal pradesh": "IN-AR",
    "assam": "IN-AS",
    "bihar": "IN-BR",
    "chandigarh": "IN-CH",
    "chhattisgarh": "IN-CG",
    "chattisgarh": "IN-CG",
    "dadra and nagar haveli and daman and diu": "IN-DH",
    "delhi": "IN-DL",
    "nct of delhi": "IN-DL",
    "goa": "IN-GA",
    "gujarat": "IN-GJ",
    "haryana": "IN-HR",
    "himachal pradesh": "IN-HP",
    "jammu and kashmir": "IN-JK",
    "jharkhand": "IN-JH",
    "karnataka": "IN-KA",
    "kerala": "IN-KL",
    "ladakh": "IN-LA",
    "lakshadweep": "IN-LD",
    "madhya pradesh": "IN-MP",
    "maharashtra": "IN-MH",
    "manipur": "IN-MN",
    "meghalaya": "IN-ML",
    "mizoram": "IN-MZ",
    "nagaland": "IN-NL",
    "odisha": "IN-OD",
    "orissa": "IN-OD",
    "puducherry": "IN-PY",
    "pondicherry": "IN-PY",
    "punjab": "IN-PB",
    "rajasthan": "IN-RJ",
    "sikkim": "IN-SK",
    "tamil nadu": "IN-TN",
    "telangana": "IN-TS",
    "tripura": "IN-TR",
    "uttar pradesh": "IN-UP",
    "uttarakhand": "IN-UK",
    "uttaranchal": "IN-UK",
    "west bengal": "IN-WB",
}

# Superseded ISO 3166-2:IN codes still found in other data sets -> current code.
REGION_ALIASES: dict[str, str] = {"IN-OR": "IN-OD", "IN-CT": "IN-CG", "IN-TG": "IN-TS", "IN-UT": "IN-UK"}

# 0.6745 = the 0.75 quantile of the standard normal: MAD / 0.6745 estimates sigma (Iglewicz & Hoaglin).
MAD_CONSISTENCY = 0.6745


def region_for_state(state: str) -> str | None:
    """ISO 3166-2 region code (e.g. ``IN-GJ``) for an Indian state or union territory name, or None."""
    return STATE_TO_REGION.get(" ".join(state.strip().lower().split()))


def normalize_region(region: str) -> str:
    """Upper-cased region code with superseded ISO codes mapped to the current ones."""
    code = region.strip().upper()
    return REGION_ALIASES.get(code, code)


def parse_price(text: str) -> int:
    """An Agmarknet price cell ("7,700.00", Rs./Quintal) as integer paise/kg (rounded half up).

    Raises:
        ValueError: the cell is empty or not a number.
    """
    value = float(text.replace(",", "").strip())
    return int(value + 0.5)


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One observed price: commodity (canonical), region (ISO 3166-2), day, price paise/kg."""

    commodity: str
    region: str
    day: date
    price: int


def _commodity_from_path(path: Path) -> str | None:
    # data/agmarknet/trinetra_<commodity>_<from>_<to>.csv
    parts = path.stem.split("_")
    for part in parts[1:2] + parts:
        canon = canonical_commodity(part)
        if canon is not None:
            return canon
    return None


def load_agmarknet(paths: Iterable[str | Path]) -> list[PricePoint]:
    """Read Agmarknet CSV files into price points, oldest first.

    Uses the ``Modal Price`` column (the most frequent transaction price of a market day). The
    commodity is the file's (``trinetra_<commodity>_...csv``) or, failing that, the row's
    ``Commodity`` column. Rows with an unknown state, a non-positive or unparsable price, or a unit
    other than Rs./Quintal are skipped.
    """
    points: list[PricePoint] = []
    for raw in paths:
        path = Path(raw)
        file_commodity = _commodity_from_path(path)
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    if row.get("Price Unit", "Rs./Quintal").strip() != "Rs./Quintal":
                        continue
                    region = region_for_state(row["State"])
                    commodity = file_commodity or canonical_commodity(row["Commodity"])
                    price = parse_price(row["Modal Price"])
                    day = datetime.strptime(row["Arrival Date"].strip(), "%d-%m-%Y").date()
                except (KeyError, ValueError, AttributeError):
                    continue
                if region is None or commodity is None or price <= 0:
                    continue
                points.append(PricePoint(commodity, region, day, price))
    points.sort(key=lambda p: p.day)
    return points


def default_agmarknet_paths(data_dir: str | Path | None = None) -> list[Path]:
    """The Agmarknet CSV files shipped in ``data/agmarknet`` (repository root by default)."""
    base = Path(data_dir) if data_dir is not None else Path(__file__).resolve().parent.parent / "data"
    return sorted((base / "agmarknet").glob("*.csv"))


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
        self._add((commodity, normalize_region(region)), price)
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
            keys = self._keys[(commodity, region)] = ((canon, normalize_region(region)), (canon, "*"))
        for key in keys:
            series = self._series.get(key)
            if series is not None and len(series.prices) >= self.min_samples:
                return series.stats()
        return None

    def keys(self) -> list[tuple[str, str]]:
        """Known (commodity, region) series; region ``*`` is the commodity-wide series."""
        return sorted(self._series)

    @classmethod
    def from_agmarknet(
        cls, paths: Iterable[str | Path] | None = None, window: int = 500, min_samples: int = 20
    ) -> MarketReference:
        """A reference seeded with the Agmarknet files (default: the shipped ``data/agmarknet``)."""
        files = list(paths) if paths is not None else default_agmarknet_paths()
        return cls(window, min_samples).seed(load_agmarknet(files))
