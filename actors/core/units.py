"""Quantity units at the API edge, converted once to integer kilograms with pint.

The core never sees anything but integer kg (ARCHITECTURE.md, "Units"). Trade units:

- ``kg``
- ``quintal`` = 100 kg (Agmarknet price basis)
- ``tonne`` = 1000 kg (Agmarknet arrivals are in metric tonnes)
- ``bale`` = 170 kg (Indian cotton lint bale, Cotton Corporation of India)
- ``candy`` = 355.6 kg (Indian cotton trade unit, 2 bales of 177.8 kg lint)
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import pint

UNITS: tuple[str, ...] = ("kg", "quintal", "tonne", "bale", "candy")


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    ureg: pint.UnitRegistry = pint.UnitRegistry()
    ureg.define("quintal = 100 * kilogram")
    ureg.define("bale = 170 * kilogram")
    ureg.define("candy = 355.6 * kilogram")
    return ureg


@lru_cache(maxsize=16)
def kg_per_unit(unit: str) -> Decimal:
    """Kilograms in one ``unit`` as an exact Decimal.

    Raises:
        ValueError: the unit is not one of :data:`UNITS`.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown quantity unit {unit!r}; use one of {', '.join(UNITS)}")
    ureg = _registry()
    factor = (1 * ureg(unit)).to(ureg.kilogram).magnitude
    return Decimal(str(factor)).normalize()


def to_kg(value: float | int | str, unit: str = "kg") -> int:
    """Convert ``value`` ``unit`` to integer kilograms, rounding half up to the nearest kg.
    Memoised (``typed``: 1, 1.0 and True are different keys): orders repeat the same few amounts,
    and the exact Decimal conversion was 4 % of the gateway's CPU per single order.

    Raises:
        ValueError: unknown unit, a value that is not a finite number, or one too large to convert.
    """
    try:
        return _to_kg(value, unit)
    except TypeError:  # unhashable, so not a number (the memo needs hashable arguments)
        raise ValueError(f"quantity {value!r} is not a number") from None


@lru_cache(maxsize=4096, typed=True)
def _to_kg(value: float | int | str, unit: str) -> int:
    if isinstance(value, bool):
        raise ValueError("quantity must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("quantity must be finite")
    try:
        dec = Decimal(str(value))
    except ArithmeticError as exc:
        raise ValueError(f"quantity {value!r} is not a number") from exc
    if not dec.is_finite():
        raise ValueError("quantity must be finite")
    try:
        return int((dec * kg_per_unit(unit)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except ArithmeticError as exc:  # decimal.InvalidOperation for values beyond the context precision
        raise ValueError(f"quantity {value!r} {unit} is out of range") from exc


def from_kg(kg: int, unit: str = "kg") -> float:
    """Express integer kilograms in ``unit`` (for display only)."""
    return float(Decimal(kg) / kg_per_unit(unit))
