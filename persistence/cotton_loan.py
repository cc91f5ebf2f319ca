"""The fit of the FSA cotton premium/discount steps to the CCC loan values of the UGA variety trials.

Source: ``data/cotton_quality/uga_variety_trials_2020-2024_hvi_long.csv`` (data/SOURCES.md:
University of Georgia cotton variety trials, repository bastoslabuga/UGA_cottondashboard, file
data/varietytrials_w_2023_24_loan.csv, commit 61b6ad6). Each plot's ``loan_value`` (US cents/lb,
crop years 2021-2024) is the USDA CCC loan rate computed for its HVI results: the base loan rate
(:data:`BASE_LOAN_CENTS`) plus the Farm Service Agency premium/discount tables (colour/leaf/staple
grid, micronaire, strength, length uniformity). Colour and leaf grades are not in the file.

Method (:func:`fit_year`): per crop year, ordinary least squares of (loan value - base rate) in
points (1 point = 0.01 cent/lb) on indicator variables of the FSA brackets (:data:`BRACKETS`, base
brackets left out), with nuisance indicators that stand in for the grid: staple length in 32nds
of an inch (from UHML, :func:`staple_32nds`), the HVI reflectance Rd by whole unit (69 and below,
each unit 70-82, 83 and above; the colour grade follows Rd) and +b of 8.5 and above (yellowness).
``cells=True`` replaces the additive nuisance by one indicator per (staple, Rd, +b) cell, the
grid's interaction; a step that moves between the two models is decided by the missing grades,
not by the data. Pure computation plus reading the one file (numpy).

Also the reader of ``data/cotton_quality/ams_spot_mike_differences_2025-02-06.csv``
(:func:`load_spot_mike`): our transcription of the seven-market average micronaire differences of
USDA AMS report MP_CN207 of 2025-02-06 (data/SOURCES.md), which the schedule carries below 3.5,
and of ``data/cotton_quality/ams_sjv_strength_uniformity_differences_2024-03-28.csv``
(:func:`load_spot_sjv`): our transcription of the strength and uniformity differences of the USDA
AMS San Joaquin Valley spot quotations, report MP_CN009 of 2024-03-28 (data/SOURCES.md), which the
schedule carries for strength and uniformity.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOAN_FILE = ROOT / "data" / "cotton_quality" / "uga_variety_trials_2020-2024_hvi_long.csv"
SPOT_MIKE_FILE = ROOT / "data" / "cotton_quality" / "ams_spot_mike_differences_2025-02-06.csv"
SPOT_SJV_FILE = ROOT / "data" / "cotton_quality" / "ams_sjv_strength_uniformity_differences_2024-03-28.csv"
# CCC base loan rate for upland cotton, cents/lb: 52.00 for the 2019-2024 crops (FSA news release
# of 2020-10-01 on the 2021-crop rate; 2018 Farm Bill range 45-52 c/lb, at its cap)
BASE_LOAN_CENTS = 52.0

# param -> (low inclusive, high exclusive, label, base?) of the FSA tables, readings at 0.1
Bracket = tuple[float, float, str, bool]
BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "micronaire": (
        (0.0, 2.5, "2.4 & below", False),
        (2.5, 2.7, "2.5-2.6", False),
        (2.7, 3.0, "2.7-2.9", False),
        (3.0, 3.3, "3.0-3.2", False),
        (3.3, 3.5, "3.3-3.4", False),
        (3.5, 3.7, "3.5-3.6", True),
        (3.7, 4.3, "3.7-4.2", False),
        (4.3, 5.0, "4.3-4.9", True),
        (5.0, 5.3, "5.0-5.2", False),
        (5.3, 99.0, "5.3 & above", False),
    ),
    "strength_gtex": (
        *((float(s), float(s + 1), f"{s}.0-{s}.9", False) for s in range(18, 26)),
        (26.0, 29.0, "26.0-28.9", True),
        *((float(s), float(s + 1), f"{s}.0-{s}.9", False) for s in range(29, 34)),
        (34.0, 99.0, "34.0 & above", False),
    ),
    "uniformity_pct": (
        *((float(u), float(u + 1), f"{u}.0-{u}.9", False) for u in range(75, 80)),
        (80.0, 82.0, "80.0-81.9", True),
        *((float(u), float(u + 1), f"{u}.0-{u}.9", False) for u in range(82, 85)),
        (85.0, 999.0, "85.0 & above", False),
    ),
}
# USDA AMS, The Classification of Cotton (Agricultural Handbook 566): UHML in hundredths of an
# inch -> staple in 32nds (upper bound inclusive)
_STAPLE: tuple[tuple[float, int], ...] = (
    *((0.79, 24), (0.85, 26), (0.89, 28), (0.92, 29), (0.95, 30), (0.98, 31), (1.01, 32)),
    *((1.04, 33), (1.07, 34), (1.10, 35), (1.13, 36), (1.17, 37), (1.20, 38), (1.23, 39)),
    *((1.26, 40), (1.29, 41), (1.32, 42), (1.35, 43)),
)


@dataclass(frozen=True, slots=True)
class Plot:
    """One trial entry with a loan value: ``points`` = (loan value - base rate) x 100 (points/lb);
    readings micronaire, strength g/tex, uniformity %, UHML inches, Rd, +b (None when not given)."""

    year: int
    points: float
    micronaire: float
    strength_gtex: float
    uniformity_pct: float
    length_in: float
    rd: float
    b: float | None


@dataclass(frozen=True, slots=True)
class Step:
    """One fitted bracket: ``points`` per lb (vs the base brackets), its standard error, plots in it."""

    points: float
    se: float
    n: int


@dataclass(frozen=True, slots=True)
class Fit:
    """A crop year's fit: ``steps[(param, label)]`` and the residuals (points/lb, one per plot)."""

    year: int
    n: int
    steps: dict[tuple[str, str], Step]
    residuals: tuple[float, ...]

    def abs_residual(self, q: float) -> float:
        """The ``q`` quantile (0-100) of the absolute residuals, points/lb."""
        return float(np.percentile(np.abs(self.residuals), q))


def load_plots(path: Path = LOAN_FILE) -> list[Plot]:
    """The plots with a loan value and all of mic, strength, uniformity, UHML and Rd, file order."""
    want = {"loan_value", "mic", "strength_gtex", "uniformity", "length_in", "rd", "b"}
    acc: dict[tuple[str, str, str, str, str], dict[str, float]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["resp_var"] in want and row["resp_val"] not in ("", "NA"):
                key = (row["year"], row["irrigation"], row["site"], row["trial"], row["variety"])
                acc.setdefault(key, {})[row["resp_var"]] = float(row["resp_val"])
    out = []
    for key, v in acc.items():
        if all(k in v for k in want - {"b"}):
            out.append(
                Plot(
                    int(key[0]),
                    (v["loan_value"] - BASE_LOAN_CENTS) * 100,
                    v["mic"],
                    v["strength_gtex"],
                    v["uniformity"],
                    v["length_in"],
                    v["rd"],
                    v.get("b"),
                )
            )
    return out


SpotRow = tuple[float, float, Fraction, bool]


def _checked(name: str, rows: tuple[SpotRow, ...]) -> tuple[SpotRow, ...]:
    for (_, high, _, _), (low, _, _, _) in zip(rows, rows[1:], strict=False):
        if high != low:
            raise ValueError(f"{name}: gap between {high:g} and {low:g}")
    if any(base and pts != 0 for _, _, pts, base in rows):
        raise ValueError(f"{name}: a base range with a difference")
    return rows


def load_spot_mike(path: Path = SPOT_MIKE_FILE) -> tuple[SpotRow, ...]:
    """The AMS seven-market average micronaire differences, file order: (low inclusive, high
    exclusive, points per lb exactly as published, base range?). ValueError if the brackets leave a
    gap or a base range has a difference."""
    with path.open(encoding="utf-8") as fh:
        rows = tuple(
            (
                float(r["mike_low"]),
                float(r["mike_high"]),
                Fraction(r["avg_points_per_lb"]),
                r["base"] == "yes",
            )
            for r in csv.DictReader(fh)
        )
    return _checked(path.name, rows)


def load_spot_sjv(path: Path = SPOT_SJV_FILE) -> dict[str, tuple[SpotRow, ...]]:
    """The AMS San Joaquin Valley strength and uniformity differences of 2024-03-28 (MP_CN009):
    ``{"strength_gtex" | "uniformity_pct": ((low inclusive, high exclusive, points per lb exactly as
    published, base range?), ...)}`` in file order (g/tex, %). ValueError if a factor's brackets
    leave a gap or a base range has a difference."""
    out: dict[str, list[SpotRow]] = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.setdefault(r["factor"], []).append(
                (float(r["low"]), float(r["high"]), Fraction(r["points_per_lb"]), r["base"] == "yes")
            )
    return {f: _checked(f"{path.name} {f}", tuple(rows)) for f, rows in out.items()}


def bracket_of(param: str, value: float) -> Bracket:
    """The FSA bracket of reading ``value`` (rounded to 0.1) of ``param``; ValueError outside."""
    v = round(value, 1)
    for br in BRACKETS[param]:
        if br[0] <= v < br[1]:
            return br
    raise ValueError(f"{param} {value:g} outside the brackets")


def staple_32nds(length_in: float) -> int:
    """Staple length in 32nds of an inch of a UHML in inches (AMS conversion table)."""
    li = round(length_in, 2)
    for high, staple in _STAPLE:
        if li <= high:
            return staple
    return 44


def _nuisance(p: Plot, cells: bool) -> list[str]:
    rd = f"rd{min(max(math.floor(p.rd), 69), 83)}"
    yellow = f"b{int(p.b is not None and p.b >= 8.5)}"
    staple = f"s{staple_32nds(p.length_in)}"
    return [f"{staple}|{rd}|{yellow}"] if cells else [staple, rd, yellow]


def fit_year(
    plots: Sequence[Plot],
    year: int,
    *,
    cells: bool = False,
    fixed: Mapping[str, Callable[[float], float]] | None = None,
) -> Fit:
    """Least-squares fit of crop year ``year`` (see the module docstring); ValueError if no plots.

    ``fixed``: parameters whose points are given (a schedule: reading -> points/lb) instead of
    fitted; they are subtracted from the loan value and their brackets leave the design, so the
    residuals show how well that schedule reproduces the loan values. The first nuisance level of
    Rd and +b is left out (the staple indicators carry the level).
    """
    fixed = fixed or {}
    rows = [p for p in plots if p.year == year]
    if not rows:
        raise ValueError(f"no loan values for crop year {year}")
    labels: list[list[tuple[str, str]]] = []
    counts: Counter[tuple[str, str]] = Counter()
    for p in rows:
        mine = []
        for param in BRACKETS:
            if param in fixed:
                continue
            low, _, label, base = bracket_of(param, getattr(p, param))
            if not base:
                mine.append((param, label))
        labels.append(mine)
        counts.update(mine)
    steps_cols = sorted(counts)
    nuis = [_nuisance(p, cells) for p in rows]
    levels = sorted({x for n in nuis for x in n})
    first = {kind: min(x for x in levels if x[0] == kind) for kind in ("r", "b")} if not cells else {}
    nuis_cols = [x for x in levels if x not in first.values()]
    cols = {c: i for i, c in enumerate([*steps_cols, *nuis_cols])}
    x = np.zeros((len(rows), len(cols)))
    for i, (mine, nu) in enumerate(zip(labels, nuis, strict=True)):
        for c in [*mine, *nu]:
            if c in cols:
                x[i, cols[c]] = 1.0
    y = np.array([p.points - sum(f(getattr(p, k)) for k, f in fixed.items()) for p in rows])
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    s2 = float(resid @ resid) / max(1, len(rows) - int(rank))
    se = np.sqrt(np.diag(s2 * np.linalg.pinv(x.T @ x)))
    steps = {c: Step(float(beta[cols[c]]), float(se[cols[c]]), counts[c]) for c in steps_cols}
    return Fit(year, len(rows), steps, tuple(float(r) for r in resid))
