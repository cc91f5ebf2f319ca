"""Cotton strength and length uniformity: the schedule carries the published USDA AMS San Joaquin
Valley spot differences (MP_CN009, 2024-03-28; data/SOURCES.md), exactly as transcribed in the data
file; a delivery outside the contracted range is adjusted by the bracket of its reading minus the
bracket of the nearest contracted edge, to the exact paise/kg and invoice amount; a reading inside
the range, or in a bracket worth the same as the edge's, changes nothing (docs/post-trade.md,
"Quality claims" and "Cotton schedule")."""

from __future__ import annotations

from fractions import Fraction

import pytest

from actors.core.posttrade.engine import OpenContract, RecordDelivery, SettlementEngine
from actors.core.posttrade.quality import (
    COTTON_POINTS,
    SJV_RULE,
    adjustments,
    points_to_paise_per_kg,
)
from persistence.cotton_loan import load_spot_sjv

CT = "CT-A-IN-GJ.cotton-5"
PRICE, KG = 16000, 1700
# contracted ranges of the tests: the FSA loan base ranges, as a buyer would write them
RANGES = {"micronaire": (3.5, 4.9), "strength_gtex": (26.0, 28.9), "uniformity_pct": (80.0, 81.9)}


def _deliver(ranges: dict[str, tuple[float, float]], quality: dict[str, float]) -> dict:
    e = SettlementEngine()
    e.execute(
        OpenContract(
            1000, "A-IN-GJ.cotton-5", "IN-GJ.cotton", 5, "cotton", "IN-GJ", "B", "S", KG, PRICE, ranges
        )
    )
    _, d = e.execute(RecordDelivery(2000, "S", CT, KG, quality, 2000))
    return d


def test_schedule_is_the_published_table() -> None:
    published = load_spot_sjv()
    assert set(published) == {"strength_gtex", "uniformity_pct"}
    for param, rows in published.items():
        schedule = COTTON_POINTS[param]
        assert {src for *_, src in schedule} == {SJV_RULE}
        table = [(lo, hi, pts) for lo, hi, pts, _ in rows]
        assert [(lo, hi, Fraction(pts)) for lo, hi, pts, _ in schedule if lo >= rows[0][0]] == table
    # strength: the report lists nothing below 24.0; the schedule carries the 24.0-24.9 value down
    assert COTTON_POINTS["strength_gtex"][0] == (0.0, 24.0, -500, SJV_RULE)
    assert published["strength_gtex"][0][:3] == (24.0, 25.0, Fraction(-500))
    assert len(COTTON_POINTS["uniformity_pct"]) == len(published["uniformity_pct"])
    assert [(lo, int(pts)) for lo, _, pts, _ in published["strength_gtex"]] == [
        (24.0, -500),
        (25.0, -400),
        (26.0, -300),
        (27.0, 0),
        (29.0, 0),
        (30.0, 75),
        (31.0, 125),
        (33.0, 250),
    ]
    assert [(lo, int(pts)) for lo, _, pts, _ in published["uniformity_pct"]] == [
        (0.0, -60),
        (78.0, -50),
        (79.0, -40),
        (80.0, 0),
        (81.0, 0),
        (82.0, 50),
        (83.0, 80),
        (84.0, 90),
        (85.0, 100),
        (86.0, 110),
    ]
    # AMS's base ranges, not the loan schedule's 26.0-28.9 and 80.0-81.9
    assert [(lo, hi) for lo, hi, _, base in published["strength_gtex"] if base] == [(27.0, 29.0)]
    assert [(lo, hi) for lo, hi, _, base in published["uniformity_pct"] if base] == [(81.0, 82.0)]


@pytest.mark.parametrize(
    ("param", "reading", "bracket", "points", "edge", "edge_points", "paise"),
    [
        # strength against contracted 26.0-28.9 (edge 26.0 lies in 26.0-26.9, -300)
        ("strength_gtex", 23.0, "0-24", -500, 26.0, -300, -388),  # below the table: 24.0-24.9 carried
        ("strength_gtex", 24.5, "24-25", -500, 26.0, -300, -388),
        ("strength_gtex", 25.5, "25-26", -400, 26.0, -300, -194),
        ("strength_gtex", 30.4, "30-31", 75, 28.9, 0, 146),
        ("strength_gtex", 32.0, "31-33", 125, 28.9, 0, 243),
        ("strength_gtex", 35.0, "33-99", 250, 28.9, 0, 485),
        # uniformity against contracted 80.0-81.9 (both edges in zero brackets)
        ("uniformity_pct", 77.0, "0-78", -60, 80.0, 0, -116),
        ("uniformity_pct", 78.5, "78-79", -50, 80.0, 0, -97),
        ("uniformity_pct", 79.5, "79-80", -40, 80.0, 0, -78),
        ("uniformity_pct", 82.5, "82-83", 50, 81.9, 0, 97),
        ("uniformity_pct", 83.5, "83-84", 80, 81.9, 0, 155),
        ("uniformity_pct", 84.5, "84-85", 90, 81.9, 0, 175),
        ("uniformity_pct", 85.5, "85-86", 100, 81.9, 0, 194),
        ("uniformity_pct", 87.0, "86-100", 110, 81.9, 0, 213),
    ],
)
def test_a_delivery_in_each_bracket(
    param: str, reading: float, bracket: str, points: int, edge: float, edge_points: int, paise: int
) -> None:
    delta = points - edge_points
    # points x 0.0001 USD/lb x 88 INR/USD x 100 / 0.45359237 kg/lb, e.g. +75 -> 145.51 -> 146
    assert points_to_paise_per_kg(delta) == paise
    (adj,) = adjustments("cotton", PRICE, RANGES, {param: reading})
    assert (adj.parameter, adj.value, adj.paise_per_kg) == (param, reading, paise)
    assert adj.rule == (
        f"{SJV_RULE}: {param} {reading:g} in [{bracket}) {points} pts/lb vs contracted edge {edge:g} "
        f"{edge_points} pts/lb = {delta} pts/lb at 88 INR/USD"
    )
    d = _deliver(RANGES, {param: reading})
    assert [(a["parameter"], a["paise_per_kg"]) for a in d["adjustments"]] == [(param, paise)]
    assert d["adjusted_price"] == PRICE + paise and d["invoice"]["amount"] == KG * (PRICE + paise)


@pytest.mark.parametrize(
    ("param", "reading"),
    [
        ("strength_gtex", 26.0),  # inside the contracted range
        ("strength_gtex", 27.5),
        ("strength_gtex", 28.9),
        ("uniformity_pct", 80.0),
        ("uniformity_pct", 81.0),
        ("uniformity_pct", 81.9),
        ("strength_gtex", 29.5),  # outside, but 29.0-29.9 is worth the 0 of the edge 28.9
    ],
)
def test_no_adjustment_inside_the_range_or_in_a_bracket_worth_the_edge(param: str, reading: float) -> None:
    assert adjustments("cotton", PRICE, RANGES, {param: reading}) == []
    d = _deliver(RANGES, {param: reading})
    assert d["adjustments"] == [] and d["invoice"]["amount"] == KG * PRICE


def test_the_contracted_edge_sets_the_reference() -> None:
    # a minimum of 30.0 g/tex bought the +75 bracket: 26.5 loses -300 - 75 = -375 points
    (a,) = adjustments("cotton", PRICE, {"strength_gtex": (30.0, 40.0)}, {"strength_gtex": 26.5})
    assert a.paise_per_kg == points_to_paise_per_kg(-375) == -728
    assert "[26-27) -300 pts/lb vs contracted edge 30 75 pts/lb = -375 pts/lb" in a.rule
    # the AMS base as the contracted range: 26.5 is the full -300
    (b,) = adjustments("cotton", PRICE, {"strength_gtex": (27.0, 28.9)}, {"strength_gtex": 26.5})
    assert b.paise_per_kg == points_to_paise_per_kg(-300) == -582
    # the integration tests' 26.0-45.0: 25.0 is -400 - (-300); no premium is possible above 26.0
    (c,) = adjustments("cotton", PRICE, {"strength_gtex": (26.0, 45.0)}, {"strength_gtex": 25.0})
    assert c.paise_per_kg == points_to_paise_per_kg(-100) == -194
    assert adjustments("cotton", PRICE, {"strength_gtex": (26.0, 45.0)}, {"strength_gtex": 35.0}) == []
    # the season replay's uniformity 79.0-90.0: 78.4 is -50 - (-40) = -10 points
    (u,) = adjustments("cotton", PRICE, {"uniformity_pct": (79.0, 90.0)}, {"uniformity_pct": 78.4})
    assert u.paise_per_kg == points_to_paise_per_kg(-10) == -19
    # no contracted range: the reading is recorded, not priced
    assert adjustments("cotton", PRICE, {"micronaire": (3.5, 4.9)}, {"strength_gtex": 20.0}) == []


def test_micronaire_strength_and_uniformity_in_one_delivery() -> None:
    d = _deliver(RANGES, {"micronaire": 5.1, "strength_gtex": 30.4, "uniformity_pct": 79.5})
    assert [(a["parameter"], a["paise_per_kg"]) for a in d["adjustments"]] == [
        ("micronaire", -433),  # FSA loan fit 5.0-5.2, -223 points
        ("strength_gtex", 146),  # +75 points
        ("uniformity_pct", -78),  # -40 points
    ]
    assert d["adjusted_price"] == 15635 and d["invoice"]["amount"] == 1700 * 15635 == 26_579_500
