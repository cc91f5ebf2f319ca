"""Building blocks of the API's request bodies: the strict base model, quantities, locations,
regions, commodities, quality ranges and the id and price fields (pydantic v2).

A quantity is converted exactly once, here, to integer kg (:meth:`Quantity.kg`); a region code is
stored as its current ISO 3166-2 code; a location lies in its region's widened bounding box.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from actors.core.commodities import canonical_commodity
from actors.core.regions import UnknownRegion, normalize_region, outside_region
from actors.core.roles import Role
from actors.core.units import UNITS, to_kg
from gateway.edge.text import TextRule

MAX_KG = 10**12
MAX_PRICE = 10**9

# A role by its name ("seller"): strict models still take the JSON string for the enum.
RoleIn = Annotated[Role, Field(strict=False)]
ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"
REGION_PATTERN = r"^[A-Z]{2}-[A-Z0-9]{1,8}$"  # ISO 3166-2 (1-3 chars); up to 8 for private zones

ClientOrderId = Annotated[str, Field(pattern=ID_PATTERN, description="Unique per party; retries dedup on it")]
PartyId = Annotated[str, Field(pattern=ID_PATTERN)]
Price = Annotated[int, Field(gt=0, le=MAX_PRICE, description="paise per kg")]
Unit = Literal["kg", "quintal", "tonne", "bale", "candy"]
assert set(UNITS) == {"kg", "quintal", "tonne", "bale", "candy"}


class Strict(BaseModel):
    """Base: unknown fields are an error; strings are stripped; types are strict (no ``true`` or
    ``"100"`` for a number, no ``1`` or ``"yes"`` for a boolean; an int is a valid float); floats are
    finite."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True, allow_inf_nan=False)


class Quantity(Strict):
    """An amount of commodity, e.g. ``{"value": 120, "unit": "bale"}`` (= 20,400 kg)."""

    value: float = Field(gt=0, le=1e12, description="positive finite number of ``unit``")
    unit: Unit = Field("kg", description="one of the commodity spec's units (bale and candy: cotton only)")

    @model_validator(mode="after")
    def _range(self) -> Quantity:
        try:
            kg = to_kg(self.value, self.unit)
        except (ArithmeticError, ValueError):
            raise ValueError("quantity is not a representable number") from None
        if kg < 1:
            raise ValueError("quantity is below 1 kg")
        if kg > MAX_KG:
            raise ValueError(f"quantity exceeds {MAX_KG} kg")
        return self

    def kg(self) -> int:
        """Integer kilograms (rounded half up)."""
        return to_kg(self.value, self.unit)


def _check_region(v: str) -> str:
    try:
        return normalize_region(v)
    except UnknownRegion as e:
        raise ValueError(str(e)) from None


# An ISO 3166-2 subdivision code, stored as its current code (superseded codes are aliases).
RegionCode = Annotated[str, Field(pattern=REGION_PATTERN), AfterValidator(_check_region)]


Place = Annotated[str, TextRule(100)]


class Location(Strict):
    """Where the goods are (availability) or are wanted (requirement): the point must lie in the
    region's bounding box widened by 0.5 degree (``actors.core.regions``; any point for regions
    without a box, i.e. outside India)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region: RegionCode = Field(description="ISO 3166-2 code, e.g. IN-GJ (IN-TG is read as IN-TS); shard key")
    city: Place | None = None
    district: Place | None = None

    @model_validator(mode="after")
    def _inside(self) -> Location:
        problem = outside_region(self.region, self.lat, self.lon)
        if problem is not None:
            raise ValueError(problem)
        return self


class QualityRange(Strict):
    """Accepted ``[min, max]`` of one quality parameter, in the spec's unit."""

    min: float
    max: float

    @model_validator(mode="after")
    def _order(self) -> QualityRange:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


def _check_commodity(v: str) -> str:
    canon = canonical_commodity(v)
    if canon is None:
        raise ValueError("unknown commodity")
    return canon


Commodity = Annotated[
    str,
    TextRule(40),
    AfterValidator(_check_commodity),
    Field(description="cotton, soybean, mustard, chana, wheat (Agmarknet spellings accepted)"),
]
ParamName = Annotated[str, TextRule(40)]
