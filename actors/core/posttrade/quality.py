"""Quality claims: the premium/discount schedule per commodity and the price adjustment of a delivery.

A delivery's measured quality is compared with the contracted ranges (the buyer requirement's
``quality_ranges``). A parameter inside its range changes nothing. Outside it, the adjustment is the
schedule's value at the measured reading minus its value at the nearest contracted edge, so the
price moves by the quality difference from what was contracted (a range narrower than the schedule's
base range can still be breached without any change of price). Every adjustment records its rule.

Cotton: USDA Farm Service Agency, *Upland Cotton Loan Premiums and Discounts* (the CCC loan
schedule, fsa.usda.gov, published each crop year), micronaire brackets in points per pound (1 point
= 0.01 US cent). Base micronaire 3.5-3.6 and 4.3-4.9 (FSA news release of 2020-10-01 on the
2021-crop loan rate; CCC base-quality ranges effective with the 2012 crop). From 3.5 up, the values
of :data:`COTTON_POINTS` are fitted to the loan values of the 2024 crop in the shipped UGA variety
trials (``data/cotton_quality/uga_variety_trials_2020-2024_hvi_long.csv``, data/SOURCES.md): each
plot's CCC loan value minus the 52 c/lb base loan rate, regressed on FSA bracket indicators with
staple, Rd and +b as nuisance (:mod:`persistence.cotton_loan`, docs/post-trade.md "Cotton
schedule" for n, standard errors and residuals). A step is adopted when its bracket holds at least
10 plots, its standard error is at most 30 points and the additive and cell nuisance models agree
within 10 points: micronaire 3.7-4.2 = +17 (n 56, se 20), 5.0-5.2 = -223 (n 21, se 26). 5.3 and
above (n 4) carries the 5.0-5.2 value: FSA's discounts grow with micronaire, so -223 is the
smallest discount the schedule can have there. Below 3.5 the 2024 trials have no plot; those five
brackets carry the published seven-market average spot differences of USDA AMS report MP_CN207 of
2025-02-06 ("MIKE DIFFERENCES - POINTS PER POUND", column AVG.; our transcription in
``data/cotton_quality/ams_spot_mike_differences_2025-02-06.csv``, data/SOURCES.md): 2.4 & below
-1675, 2.5-2.6 -1333, 2.7-2.9 -1032, 3.0-3.2 -682.1, 3.3-3.4 -482.1 points. FSA derives its loan
differentials from spot-market differences; the trials' 2022 and 2023 loan values below 3.5 agree
with these within one standard error wherever a bracket holds 5 plots or more (2022: 3.3-3.4;
2023: 3.0-3.2, 3.3-3.4), the 2021 ones sit lower (3.3-3.4: -743, se 39; docs/post-trade.md).
The 2013-crop press figures (Southeast Farm Press, "2013 upland cotton loan chart now available":
5.0-5.2 = -270, 5.3 and above = -385) are kept only as a cross-check.

Strength and length uniformity: the loan values do not resolve their steps (standard errors 28-61
points, the two nuisance models differ by 19-61 points: colour and leaf grades are not in the
file), and the FSA loan table itself is not at hand, so they carry the published spot-market
differences of USDA AMS, "SAN JOAQUIN VALLEY DIFFERENCES", Daily Spot Cotton Quotations page 10,
report MP_CN009 of 2024-03-28 (our transcription in
``data/cotton_quality/ams_sjv_strength_uniformity_differences_2024-03-28.csv``, data/SOURCES.md),
points per lb. Strength g/tex: 24.0-24.9 -500, 25.0-25.9 -400, 26.0-26.9 -300, base 27.0-28.9 0,
29.0-29.9 0, 30.0-30.9 +75, 31.0-32.9 +125, 33.0 and above +250; below 24.0 the report lists
nothing and the schedule carries the 24.0-24.9 value (the smallest discount it can have there).
Uniformity %: 77.9 and below -60, 78.0-78.9 -50, 79.0-79.9 -40, 80.0-80.9 0, base 81.0-81.9 0,
82.0-82.9 +50, 83.0-83.9 +80, 84.0-84.9 +90, 85.0-85.9 +100, 86.0 and above +110. AMS's base ranges
(27.0-28.9 g/tex, 81.0-81.9 %) only set where the table is zero: the adjustment is, as for
micronaire, the difference between the reading's bracket and the contracted edge's bracket.
Conversion (exact, then rounded half away from zero to whole paise/kg)::

    paise/kg = points x 0.0001 USD/lb x INR_PER_USD x 100 paise / 0.45359237 kg/lb

with :data:`PAISE_PER_USD` = 8 800 (INR 88.00 per USD, about the RBI reference rate of November
2025, rbi.org.in "Reference Rate Archive"; configurable). Example: -223 points -> -433 paise/kg;
-682.1 points -> -1323 paise/kg; +75 points -> +146 paise/kg.

Grains and oilseeds (soybean, mustard, chana, wheat): moisture and foreign matter above the
contracted maximum are deducted 1:1, i.e. 1 % of the contract price per percentage point above
(the rebate rule of NCDEX agricultural futures contract specifications, e.g. soybean: moisture basis
10 %, foreign matter basis 2 %, rebate 1:1 up to the acceptance limit). Below the range there is no
premium. Other parameters (oil content, protein, cotton staple length, trash and moisture) carry no
schedule here: their readings are recorded, the price is not changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType

from actors.core.posttrade.events import Adjustment

PAISE_PER_USD = 8_800
LB_KG = Fraction("0.45359237")
FSA_RULE = "USDA FSA upland cotton loan premiums and discounts"
AMS_RULE = "USDA AMS seven-market average spot differences (MP_CN207, 2025-02-06)"
SJV_RULE = "USDA AMS SJV spot differences 2024-03-28 (San Joaquin Valley, MP_CN009)"
NCDEX_RULE = "NCDEX 1:1 rebate"

Points = int | Fraction
# param -> brackets (low inclusive, high exclusive, points per lb, source rule), readings rounded to
# 0.1 first. Micronaire: the 2024-crop fit from 3.5 up, the AMS spot differences below; strength
# (g/tex) and uniformity (%): the AMS San Joaquin Valley differences (module docstring)
COTTON_POINTS: Mapping[str, tuple[tuple[float, float, Points, str], ...]] = MappingProxyType(
    {
        "micronaire": (
            (0.0, 2.5, -1675, AMS_RULE),
            (2.5, 2.7, -1333, AMS_RULE),
            (2.7, 3.0, -1032, AMS_RULE),
            (3.0, 3.3, Fraction("-682.1"), AMS_RULE),
            (3.3, 3.5, Fraction("-482.1"), AMS_RULE),
            (3.5, 3.7, 0, FSA_RULE),
            (3.7, 4.3, 17, FSA_RULE),
            (4.3, 5.0, 0, FSA_RULE),
            (5.0, 5.3, -223, FSA_RULE),
            (5.3, 99.0, -223, FSA_RULE),
        ),
        "strength_gtex": (
            (0.0, 24.0, -500, SJV_RULE),  # not in the report: the 24.0-24.9 value carried down
            (24.0, 25.0, -500, SJV_RULE),
            (25.0, 26.0, -400, SJV_RULE),
            (26.0, 27.0, -300, SJV_RULE),
            (27.0, 29.0, 0, SJV_RULE),
            (29.0, 30.0, 0, SJV_RULE),
            (30.0, 31.0, 75, SJV_RULE),
            (31.0, 33.0, 125, SJV_RULE),
            (33.0, 99.0, 250, SJV_RULE),
        ),
        "uniformity_pct": (
            (0.0, 78.0, -60, SJV_RULE),
            (78.0, 79.0, -50, SJV_RULE),
            (79.0, 80.0, -40, SJV_RULE),
            (80.0, 81.0, 0, SJV_RULE),
            (81.0, 82.0, 0, SJV_RULE),
            (82.0, 83.0, 50, SJV_RULE),
            (83.0, 84.0, 80, SJV_RULE),
            (84.0, 85.0, 90, SJV_RULE),
            (85.0, 86.0, 100, SJV_RULE),
            (86.0, 100.0, 110, SJV_RULE),
        ),
    }
)
GRAIN_REBATE_PARAMS = ("moisture_pct", "foreign_matter_pct")


def round_half_away(x: Fraction) -> int:
    """``x`` rounded to the nearest integer, halves away from zero (money rounding)."""
    n = int(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def points_to_paise_per_kg(points: Points, paise_per_usd: int = PAISE_PER_USD) -> int:
    """US points per lb (1 point = 0.0001 USD/lb; whole or decimal) -> paise/kg, rounded half away
    from zero."""
    return round_half_away(Fraction(points) / 10_000 * paise_per_usd / LB_KG)


def cotton_points(param: str, value: float) -> tuple[Points, str, str]:
    """(points per lb, bracket text, source rule) of the schedule at reading ``value`` (rounded to
    0.1). ValueError outside the schedule."""
    v = round(value, 1)
    for low, high, pts, source in COTTON_POINTS[param]:
        if low <= v < high:
            return pts, f"{low:g}-{high:g}", source
    raise ValueError(f"{param} {value:g} outside the schedule")


def _pts(p: Points) -> str:
    return f"{float(p):g}"


def _cotton(param: str, value: float, edge: float, paise_per_usd: int) -> Adjustment | None:
    pts, bracket, source = cotton_points(param, value)
    pts_edge, _, source_edge = cotton_points(param, edge)
    delta = pts - pts_edge
    if delta == 0:
        return None
    rule_src = source if source == source_edge else f"{source} / {source_edge}"
    rule = (
        f"{rule_src}: {param} {value:g} in [{bracket}) {_pts(pts)} pts/lb vs contracted edge "
        f"{edge:g} {_pts(pts_edge)} pts/lb = {_pts(delta)} pts/lb at {paise_per_usd / 100:g} INR/USD"
    )
    return Adjustment(param, value, rule, points_to_paise_per_kg(delta, paise_per_usd))


def _rebate(param: str, value: float, high: float, price: int) -> Adjustment | None:
    excess = Fraction(str(round(value, 2))) - Fraction(str(high))
    if excess <= 0:
        return None
    paise = -round_half_away(price * excess / 100)
    rule = f"{NCDEX_RULE}: {param} {value:g} above contracted {high:g}: {float(excess):g} % of price"
    return Adjustment(param, value, rule, paise)


def adjustments(
    commodity: str,
    price: int,
    ranges: Mapping[str, tuple[float, float]],
    measured: Mapping[str, float],
    paise_per_usd: int = PAISE_PER_USD,
) -> list[Adjustment]:
    """Quality claims of a delivery, in parameter order of ``measured``.

    ``price``: contract price paise/kg; ``ranges``: contracted ``{param: (low, high)}``;
    ``measured``: the delivery's readings. A parameter without a contracted range or without a
    schedule gives no adjustment. Returns :class:`Adjustment` rows (paise/kg, negative = discount).
    """
    out: list[Adjustment] = []
    for param, value in measured.items():
        rng = ranges.get(param)
        if rng is None:
            continue
        low, high = float(rng[0]), float(rng[1])
        if low <= value <= high:
            continue
        adj: Adjustment | None = None
        if commodity == "cotton" and param in COTTON_POINTS:
            adj = _cotton(param, value, low if value < low else high, paise_per_usd)
        elif commodity != "cotton" and param in GRAIN_REBATE_PARAMS and value > high:
            adj = _rebate(param, value, high, price)
        if adj is not None:
            out.append(adj)
    return out
