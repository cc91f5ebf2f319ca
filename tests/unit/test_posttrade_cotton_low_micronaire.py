"""Cotton micronaire below 3.5: the schedule carries the published USDA AMS seven-market average spot
differences (MP_CN207, 2025-02-06; data/SOURCES.md), exactly as transcribed in the data file; a
delivery in each bracket is adjusted by the exact paise/kg; the trials' loan values below 3.5 agree
with the table (docs/post-trade.md, "Cotton schedule")."""

from __future__ import annotations

import functools
from fractions import Fraction

import pytest

from actors.core.posttrade.engine import OpenContract, RecordDelivery, SettlementEngine
from actors.core.posttrade.quality import (
    AMS_RULE,
    COTTON_POINTS,
    FSA_RULE,
    adjustments,
    cotton_points,
    points_to_paise_per_kg,
)
from persistence.cotton_loan import Fit, Plot, fit_year, load_plots, load_spot_mike

CT = "CT-A-IN-GJ.cotton-5"
LOW = ("2.4 & below", "2.5-2.6", "2.7-2.9", "3.0-3.2", "3.3-3.4")


@functools.cache
def _plots() -> tuple[Plot, ...]:
    return tuple(load_plots())


@functools.cache
def _fit(year: int, held: bool) -> Fit:
    fixed = {"micronaire": lambda v: float(cotton_points("micronaire", v)[0])} if held else None
    return fit_year(_plots(), year, fixed=fixed)


def test_low_brackets_are_the_published_table() -> None:
    published = load_spot_mike()
    low_rows = [(lo, hi, pts) for lo, hi, pts, _ in published if hi <= 3.5]
    schedule = [
        (lo, hi, Fraction(pts)) for lo, hi, pts, src in COTTON_POINTS["micronaire"] if src == AMS_RULE
    ]
    assert schedule == low_rows
    assert [pts for _, _, pts in low_rows] == [
        Fraction(-1675),
        Fraction(-1333),
        Fraction(-1032),
        Fraction("-682.1"),
        Fraction("-482.1"),
    ]
    # the rest of the AMS table is kept in the file, not used: from 3.5 up the 2024 loan fit holds
    assert [(lo, pts) for lo, _, pts, base in published if base] == [(3.5, 0), (4.3, 0)]
    assert {src for lo, _, _, src in COTTON_POINTS["micronaire"] if lo >= 3.5} == {FSA_RULE}


@pytest.mark.parametrize(
    ("reading", "points", "paise"),
    [
        (2.3, "-1675", -3250),
        (2.6, "-1333", -2586),
        (2.8, "-1032", -2002),
        (3.1, "-682.1", -1323),
        (3.4, "-482.1", -935),
    ],
)
def test_a_delivery_in_each_low_bracket(reading: float, points: str, paise: int) -> None:
    # points x 0.0001 USD/lb x 88 INR/USD x 100 / 0.45359237 kg/lb, e.g. -682.1 -> -1323.32 -> -1323
    assert points_to_paise_per_kg(Fraction(points)) == paise
    (adj,) = adjustments("cotton", 16000, {"micronaire": (3.5, 4.9)}, {"micronaire": reading})
    assert (adj.parameter, adj.value, adj.paise_per_kg) == ("micronaire", reading, paise)
    assert adj.rule.startswith(f"{AMS_RULE} / {FSA_RULE}: micronaire {reading:g} in [")
    assert f"{points} pts/lb vs contracted edge 3.5 0 pts/lb = {points} pts/lb at 88 INR/USD" in adj.rule
    e = SettlementEngine()
    e.execute(
        OpenContract(
            1000,
            "A-IN-GJ.cotton-5",
            "IN-GJ.cotton",
            5,
            "cotton",
            "IN-GJ",
            "B",
            "S",
            1700,
            16000,
            {"micronaire": (3.5, 4.9)},
        )
    )
    _, d = e.execute(RecordDelivery(2000, "S", CT, 1700, {"micronaire": reading}, 2000))
    assert [(a["parameter"], a["paise_per_kg"]) for a in d["adjustments"]] == [("micronaire", paise)]
    assert d["adjusted_price"] == 16000 + paise and d["invoice"]["amount"] == 1700 * (16000 + paise)


def test_edges_inside_the_low_brackets_and_across_the_premium_bracket() -> None:
    (a,) = adjustments("cotton", 16000, {"micronaire": (3.0, 4.9)}, {"micronaire": 2.8})
    assert a.paise_per_kg == points_to_paise_per_kg(Fraction("-349.9")) == -679  # -1032 - (-682.1)
    assert a.rule.startswith(f"{AMS_RULE}: micronaire 2.8 in [2.7-3) -1032 pts/lb vs contracted edge 3")
    (b,) = adjustments("cotton", 16000, {"micronaire": (3.7, 4.2)}, {"micronaire": 3.4})
    assert b.paise_per_kg == points_to_paise_per_kg(Fraction("-499.1")) == -968  # -482.1 - 17
    assert adjustments("cotton", 16000, {"micronaire": (3.0, 4.9)}, {"micronaire": 3.2}) == []  # in range
    assert adjustments("cotton", 16000, {"micronaire": (3.1, 4.9)}, {"micronaire": 3.0}) == []  # same bracket


def test_loan_values_below_3_5_agree_with_the_table() -> None:
    table = {label: float(pts) for label, (_, _, pts, _) in zip(LOW, load_spot_mike(), strict=False)}
    checked = []
    for year in (2021, 2022, 2023, 2024):
        steps = _fit(year, held=False).steps
        for label in LOW:
            step = steps.get(("micronaire", label))
            if step is not None and step.n >= 5:
                checked.append((year, label, abs(step.points - table[label]) <= step.se))
    # every bracket with 5 plots or more agrees within one standard error, except the 2021 crop's
    # 3.3-3.4 (-743.2, se 39.3, n 7): that year's loan table discounted low micronaire more
    assert checked == [
        (2021, "3.3-3.4", False),
        (2022, "3.3-3.4", True),
        (2023, "3.0-3.2", True),
        (2023, "3.3-3.4", True),
    ]
    assert not any(round(p.micronaire, 1) < 3.5 for p in _plots() if p.year == 2024)
    # the whole micronaire schedule held fixed: median absolute residual (points/lb) free vs held
    medians = {
        y: (round(_fit(y, False).abs_residual(50), 1), round(_fit(y, True).abs_residual(50), 1))
        for y in (2022, 2023)
    }
    assert medians == {2022: (63.1, 62.6), 2023: (52.4, 49.4)}
