"""The cotton premium/discount schedule is the fit to the shipped loan values from micronaire 3.5 up:
the adopted steps are the 2024-crop estimates, the others fail the adoption rule, and the schedule
reproduces the 2024 loan values within the residuals measured when fitting (docs/post-trade.md,
"Cotton schedule"). Below 3.5: tests/unit/test_posttrade_cotton_low_micronaire.py; strength and
uniformity, which the fit does not resolve: tests/unit/test_posttrade_cotton_strength_uniformity.py."""

from __future__ import annotations

import functools

from actors.core.posttrade.quality import (
    AMS_RULE,
    COTTON_POINTS,
    FSA_RULE,
    SJV_RULE,
    adjustments,
    cotton_points,
    points_to_paise_per_kg,
)
from persistence.cotton_loan import BRACKETS, Fit, fit_year, load_plots, staple_32nds

YEAR = 2024
MIN_N, MAX_SE, MAX_MODEL_GAP = 10, 30.0, 10.0  # the adoption rule of actors/core/posttrade/quality.py


@functools.cache
def _fits() -> tuple[Fit, Fit]:
    plots = load_plots()
    return fit_year(plots, YEAR), fit_year(plots, YEAR, cells=True)


def _adopted(param: str, label: str) -> bool:
    add, cell = _fits()
    s, c = add.steps[(param, label)], cell.steps[(param, label)]
    return s.n >= MIN_N and s.se <= MAX_SE and abs(s.points - c.points) <= MAX_MODEL_GAP


def _schedule(value: float) -> float:
    return float(cotton_points("micronaire", value)[0])


def test_plots_and_the_fit_figures() -> None:
    add, cell = _fits()
    assert (add.n, cell.n) == (190, 190)
    assert [staple_32nds(x) for x in (1.07, 1.08, 1.13, 1.14, 1.17, 1.18, 1.40)] == [
        34,
        35,
        36,
        37,
        37,
        38,
        44,
    ]
    assert round(add.abs_residual(50), 1) == 40.8 and round(add.abs_residual(95), 1) == 196.0


def test_schedule_steps_are_the_adopted_2024_estimates() -> None:
    add, _ = _fits()
    table = {(lo, hi): (pts, src) for lo, hi, pts, src in COTTON_POINTS["micronaire"]}
    for low, high, label, base in BRACKETS["micronaire"]:
        step = add.steps.get(("micronaire", label))
        pts, src = table[(low, high)]
        if base:
            assert pts == 0 and src == FSA_RULE
        elif step is None:  # no 2024 plot: the AMS spot differences (the low-micronaire test file)
            assert low < 3.5 and src == AMS_RULE
        elif _adopted("micronaire", label):
            assert pts == round(step.points) and src == FSA_RULE, label
        else:  # 5.3 & above: too few plots, carries 5.0-5.2 (FSA discounts grow with micronaire)
            assert label == "5.3 & above" and step.n < MIN_N
            assert pts == table[(5.0, 5.3)][0] and step.points < pts
    assert {lo: pts for (lo, _), (pts, src) in table.items() if src == FSA_RULE} == {
        3.5: 0,
        3.7: 17,
        4.3: 0,
        5.0: -223,
        5.3: -223,
    }
    assert points_to_paise_per_kg(-223) == -433 and points_to_paise_per_kg(17) == 33


def test_strength_and_uniformity_are_not_resolved() -> None:
    add, _ = _fits()
    for param in ("strength_gtex", "uniformity_pct"):
        labels = [label for p, label in add.steps if p == param]
        assert labels and not any(_adopted(param, label) for label in labels)
        # so no step of the loan fit is used: the AMS San Joaquin Valley differences are
        # (tests/unit/test_posttrade_cotton_strength_uniformity.py)
        assert {src for *_, src in COTTON_POINTS[param]} == {SJV_RULE}


def test_schedule_reproduces_the_2024_loan_values() -> None:
    free, _ = _fits()
    held = fit_year(load_plots(), YEAR, fixed={"micronaire": _schedule})
    assert held.n == free.n
    # measured with the schedule held: median 44.5, 95th percentile 194.6 points (free fit 40.8 /
    # 196.0); 5.3 & above held at the 5.0-5.2 value accounts for most of the median's rise
    assert round(held.abs_residual(50), 1) == 44.5 and round(held.abs_residual(95), 1) == 194.6
    assert held.abs_residual(50) - free.abs_residual(50) <= 4.0


def test_a_high_micronaire_against_the_premium_edge() -> None:
    assert adjustments("cotton", 16000, {"micronaire": (3.5, 4.9)}, {"micronaire": 4.0}) == []
    (high,) = adjustments("cotton", 16000, {"micronaire": (3.7, 4.2)}, {"micronaire": 5.4})
    assert high.paise_per_kg == points_to_paise_per_kg(-223 - 17) == -466
    assert "[5.3-99) -223 pts/lb vs contracted edge 4.2 17 pts/lb = -240 pts/lb" in high.rule
    assert high.rule.startswith(FSA_RULE + ":")
