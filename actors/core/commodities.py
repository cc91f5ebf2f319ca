"""Commodity specifications: quality parameters, valid ranges, units, scoring weights, minimum score.

One registry for every commodity the exchange lists. Quality parameters are floats in the unit the
spec names; ``units`` lists the quantity units the commodity is traded in (cotton lint also in bales
of 170 kg and candies of 355.6 kg, grains and oilseeds in kg, quintal, tonne: Agmarknet reports
arrivals in tonnes and prices per quintal).

Valid ranges (``low``..``high``) are physical bounds, wider than any lot that is traded, so that a
value outside is a typing error, never a real measurement. Every measured value and every bound of
a requirement's range must lie inside them. Sources:

- Cotton (HVI fibre properties as traded in India): UHML staple length 10-50 mm (the Indian staple
  classes run from "short, 20 mm and below" to "extra long, 32.5 mm and above"; the longest Indian
  ELS cottons, Suvin and DCH-32, are about 36-38 mm); micronaire 2.0-7.0, beyond the readings of
  commercial lint (USDA AMS, *The Classification of Cotton*, Agricultural Handbook 566: discount
  zones below 3.5 and above 4.9); bundle strength 15-45 g/tex (USDA: "weak" 23 and below, "very
  strong" 31 and above; ELS cottons reach the low 40s); length uniformity index 70-95 % (USDA:
  "very low" below 77, "very high" above 85); trash 0-20 % and moisture 0-20 % (lint is traded at
  about 1.5-5 % trash and under the usual 8.5 % moisture limit of Indian lint contracts; seed
  cotton, kapas, carries more of both). The UGA variety trials in ``data/cotton_quality`` (UHML
  25-33 mm, micronaire 3-5.5, strength 26-36 g/tex) lie well inside.
- Soybean, mustard (rapeseed), chana (gram), wheat: AGMARK grade standards and the FSSAI food
  standards state moisture % (grade limits 8-14 %; 0-30 % covers grain fresh from the field),
  foreign matter % (grade limits up to 2-5 %; 0-20 %) and, for oilseeds, oil content % (soybean
  17-22 %, rapeseed-mustard 35-44 %: 10-25 % and 25-50 %); wheat protein % (8-16 %: 6-20 %).

Scoring weights (price, quality, distance, trust) sum to 1; ``min_score`` drops weak candidates in
the ``quality`` profile. ``price_band`` is the fraction below (buyer) or above (seller) the incoming
order's limit at which the price component reaches 1.0. ``reference_distance_km`` scales the
distance component when the requirement gives no ``max_distance_km``.

Market controls (docs/matching.md, "Market controls"), in basis points (1 bp = 0.01 %) and ms:
``market_band_bp`` (default 2000 = +/-20 %) is the price band around the shard's market reference
(the last Agmarknet modal price of its state); an order priced outside is rejected. The circuit
breaker halts the shard for ``breaker_halt_ms`` (default 15 min) when a trade price is more than
``breaker_move_bp`` (default 1000 = 10 %) away from the price ``breaker_window_ms`` (default
15 min) earlier (the last trade at or before then, or the market reference when the shard has no
trade that old); ``breaker_move_bp = 0`` turns the breaker off. The figures are this project's
defaults (issue 14 asks for "+/-20 % of the last modal price" and a configurable X % / Y min / Z min
breaker); docs/matching.md explains them and how an operator overrides the band per shard.

``traded_in``: the regions (current ISO 3166-2 codes) where the commodity has a market, i.e. where an
order may open a new shard under the default ``shard_creation = "traded"`` policy (docs/operators.md).
Source: the states with at least one arrival in the Agmarknet exports shipped in ``data/agmarknet/``
(``trinetra_<commodity>_2025-11_2026-01.csv``, Nov 2025 - Jan 2026, agmarknet.gov.in), mapped with
``actors.core.regions.region_for_state``; ``tests/unit/test_shard_placement.py`` checks the sets
against the files. Wheat has no export shipped, so it has no market until an operator adds one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class QualityParam:
    """One quality parameter: name, unit, valid physical range and the default tolerance (+/-)."""

    name: str
    unit: str
    low: float
    high: float
    tolerance: float
    weight: float = 1.0

    def bounds(self) -> str:
        """The valid range as text, e.g. ``[2, 7] ug/inch``."""
        return f"[{self.low:g}, {self.high:g}] {self.unit}"

    def value_problem(self, value: float) -> str | None:
        """Why ``value`` is not a valid measurement of this parameter, or None when it is."""
        if not self.low <= value <= self.high:
            return f"{self.name} {value:g} is outside its valid range {self.bounds()}"
        return None

    def range_problem(self, low: float, high: float) -> str | None:
        """Why ``[low, high]`` is not a valid accepted range of this parameter, or None."""
        if not self.low <= low <= high <= self.high:
            return f"{self.name} range [{low:g}, {high:g}] must lie within {self.bounds()}"
        return None


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """Weights of the quality-profile score components; they sum to 1."""

    price: float = 0.4
    quality: float = 0.3
    distance: float = 0.2
    trust: float = 0.1


@dataclass(frozen=True, slots=True)
class CommoditySpec:
    """Everything the core needs to know about one commodity."""

    name: str
    display_name: str
    params: tuple[QualityParam, ...]
    units: tuple[str, ...] = ("kg", "quintal", "tonne")
    weights: ScoringWeights = field(default_factory=ScoringWeights)
    min_score: float = 0.3
    price_band: float = 0.10
    reference_distance_km: float = 1000.0
    flag_near_duplicates: bool = True
    near_duplicate_window_ms: int = 5 * 60 * 1000
    default_profile: str = "quality"
    traded_in: frozenset[str] = frozenset()
    market_band_bp: int = 2000
    breaker_move_bp: int = 1000
    breaker_window_ms: int = 15 * 60 * 1000
    breaker_halt_ms: int = 15 * 60 * 1000
    aliases: tuple[str, ...] = ()  # other spellings, lower case (Agmarknet portal names included)

    def unit_problem(self, unit: str) -> str | None:
        """Why quantities of this commodity cannot be given in ``unit``, or None when they can."""
        if unit not in self.units:
            return f"{self.name} is traded in {', '.join(self.units)}, not {unit}"
        return None

    def param(self, name: str) -> QualityParam | None:
        """The parameter called ``name`` or None."""
        for p in self.params:
            if p.name == name:
                return p
        return None

    @property
    def param_names(self) -> frozenset[str]:
        """Names of the quality parameters (cached per spec)."""
        names = _PARAM_NAMES.get(self.name)
        if names is None:
            names = _PARAM_NAMES[self.name] = frozenset(p.name for p in self.params)
        return names


_PARAM_NAMES: dict[str, frozenset[str]] = {}


def _traded(codes: str) -> frozenset[str]:
    """``"IN-GJ IN-MH"`` -> the set of those region codes (the ``traded_in`` lists below)."""
    return frozenset(codes.split())


_MOISTURE = QualityParam("moisture_pct", "%", 0.0, 30.0, 1.0)
_FOREIGN = QualityParam("foreign_matter_pct", "%", 0.0, 20.0, 0.5)

COMMODITIES: Mapping[str, CommoditySpec] = MappingProxyType(
    {
        "cotton": CommoditySpec(
            name="cotton",
            display_name="Cotton (lint / kapas)",
            traded_in=_traded("IN-AP IN-GJ IN-HR IN-KA IN-MH IN-MP IN-OD IN-PB IN-RJ IN-TS"),
            aliases=("kapas",),
            units=("kg", "quintal", "tonne", "bale", "candy"),
            params=(
                QualityParam("staple_length_mm", "mm", 10.0, 50.0, 1.0, 2.0),
                QualityParam("micronaire", "ug/inch", 2.0, 7.0, 0.3, 1.5),
                QualityParam("strength_gtex", "g/tex", 15.0, 45.0, 2.0, 1.0),
                QualityParam("uniformity_pct", "%", 70.0, 95.0, 1.5, 0.5),
                QualityParam("trash_pct", "%", 0.0, 20.0, 1.0, 0.5),
                QualityParam("moisture_pct", "%", 0.0, 20.0, 1.0, 0.5),
            ),
        ),
        "soybean": CommoditySpec(
            name="soybean",
            display_name="Soybean",
            traded_in=_traded("IN-AP IN-CG IN-GJ IN-KA IN-MH IN-MN IN-MP IN-RJ IN-TN IN-TS IN-UK IN-UP"),
            aliases=("soyabean", "soya bean"),
            params=(_MOISTURE, _FOREIGN, QualityParam("oil_pct", "%", 10.0, 25.0, 1.0)),
        ),
        "mustard": CommoditySpec(
            name="mustard",
            display_name="Mustard (rapeseed)",
            traded_in=_traded("IN-CG IN-DL IN-GJ IN-HR IN-KA IN-MH IN-MP IN-PB IN-RJ IN-UK IN-UP IN-WB"),
            aliases=("rapeseed",),
            params=(_MOISTURE, _FOREIGN, QualityParam("oil_pct", "%", 25.0, 50.0, 1.0)),
        ),
        "chana": CommoditySpec(
            name="chana",
            display_name="Chana (Bengal gram)",
            traded_in=_traded("IN-AS IN-KA IN-MH IN-MN IN-RJ IN-UP"),
            aliases=("gram", "bengal gram", "bengal gram dal", "chana dal", "gram raw"),
            params=(_MOISTURE, _FOREIGN),
        ),
        "wheat": CommoditySpec(
            name="wheat",
            display_name="Wheat",
            params=(_MOISTURE, _FOREIGN, QualityParam("protein_pct", "%", 6.0, 20.0, 0.5)),
        ),
    }
)

# alias -> registry name, built from the specs' ``aliases`` (the only commodity alias table)
ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: spec.name for spec in COMMODITIES.values() for alias in spec.aliases}
)


def canonical_commodity(name: str) -> str | None:
    """Canonical registry name for ``name`` (case-insensitive, Agmarknet spellings accepted) or None."""
    if not isinstance(name, str):
        return None
    key = " ".join(name.split()).lower()
    key = ALIASES.get(key, key)
    return key if key in COMMODITIES else None


def is_traded(region: str, commodity: str) -> bool:
    """True when ``commodity`` has a market in ``region`` (a current ISO 3166-2 code, see ``traded_in``)."""
    canon = canonical_commodity(commodity)
    return canon is not None and region in COMMODITIES[canon].traded_in


def get_spec(name: str) -> CommoditySpec:
    """The spec for ``name``.

    Raises:
        KeyError: the commodity is not listed.
    """
    canon = canonical_commodity(name)
    if canon is None:
        raise KeyError(f"unknown commodity {name!r}")
    return COMMODITIES[canon]
