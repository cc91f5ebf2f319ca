"""Unit conversion at the API edge (actors/core/units.py): integer kg, half-up rounding; units and
quality ranges per commodity spec (actors/core/commodities.py)."""

from __future__ import annotations

import math

import pytest

from actors.core.units import UNITS, from_kg, to_kg


@pytest.mark.parametrize(
    ("value", "unit", "kg"),
    [
        (1, "kg", 1),
        (2.5, "quintal", 250),
        (3, "tonne", 3000),
        (10, "bale", 1700),
        (1, "candy", 356),
        (0.5, "kg", 1),
    ],
)
def test_to_kg(value: float, unit: str, kg: int) -> None:
    assert to_kg(value, unit) == kg


@pytest.mark.parametrize("value", [math.nan, math.inf, True, "abc", "1e999999999"])
def test_bad_values_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError):
        to_kg(value, "tonne")  # type: ignore[arg-type]


def test_unknown_unit() -> None:
    with pytest.raises(ValueError, match="unknown quantity unit"):
        to_kg(1, "bushel")


def test_from_kg() -> None:
    assert from_kg(1700, "bale") == 10.0


def test_units_per_commodity_spec() -> None:
    from actors.core.commodities import COMMODITIES, get_spec

    assert (
        get_spec("cotton").unit_problem("bale") is None and get_spec("cotton").unit_problem("candy") is None
    )
    assert get_spec("soybean").unit_problem("bale") == "soybean is traded in kg, quintal, tonne, not bale"
    for spec in COMMODITIES.values():
        assert set(spec.units) <= set(UNITS) and "kg" in spec.units, spec.name
        assert spec.unit_problem("quintal") is None
        if spec.name != "cotton":
            assert spec.unit_problem("candy") is not None


def test_quality_parameters_have_physical_ranges() -> None:
    from actors.core.commodities import COMMODITIES, get_spec

    cotton = get_spec("cotton")
    bounds = {p.name: (p.low, p.high) for p in cotton.params}
    assert bounds == {
        "staple_length_mm": (10.0, 50.0),
        "micronaire": (2.0, 7.0),
        "strength_gtex": (15.0, 45.0),
        "uniformity_pct": (70.0, 95.0),
        "trash_pct": (0.0, 20.0),
        "moisture_pct": (0.0, 20.0),
    }
    mic = cotton.param("micronaire")
    assert mic is not None
    assert mic.value_problem(4.2) is None and mic.range_problem(2.0, 7.0) is None
    assert mic.value_problem(1e308) == "micronaire 1e+308 is outside its valid range [2, 7] ug/inch"
    assert (
        mic.range_problem(-1e308, 1e308)
        == "micronaire range [-1e+308, 1e+308] must lie within [2, 7] ug/inch"
    )
    assert mic.range_problem(3.0, 7.5) is not None and mic.range_problem(1.9, 4.0) is not None
    for spec in COMMODITIES.values():
        for p in spec.params:
            assert math.isfinite(p.low) and math.isfinite(p.high) and p.low < p.high, (spec.name, p.name)
            if p.unit == "%":
                assert p.low >= 0 and p.high <= 100, (spec.name, p.name)
