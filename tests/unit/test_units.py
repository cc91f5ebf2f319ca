"""Unit conversion at the API edge (actors/units.py): integer kg, half-up rounding."""

from __future__ import annotations

import math

import pytest

from actors.core.units import from_kg, to_kg


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
