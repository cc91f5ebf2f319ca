"""Request and response schemas of the HTTP API (pydantic v2; unknown fields are rejected).

Units at the edge (ARCHITECTURE.md "Units"):

- Quantities are ``{"value": number, "unit": "kg"|"quintal"|"tonne"|"bale"|"candy"}`` and are converted
  exactly once, here, to integer kg with :func:`actors.core.units.to_kg` (``Quantity.kg``).
- Prices are integer paise per kg (``*_paise_per_kg``). 1 Rs/quintal == 1 paise/kg.
- Quality values are floats in the unit of the commodity spec (``actors.core.commodities``).
- Locations are WGS84 ``lat``/``lon`` plus an ISO 3166-2 ``region`` code (``IN-GJ``).
- Times are epoch milliseconds (``*_ms``/``valid_until``).

Input rules (docs/gateway.md "Input rules"): numbers are strict (JSON ``true`` or ``"100"`` is not a
number; integers are accepted where floats are, not the reverse; NaN/Infinity are refused); every
free-text field is :data:`gateway.edge.text.SafeText` (no control characters, NFC, bounded); a
quantity's unit must be one the commodity is traded in; quality values and range bounds lie within
the parameter's valid range (``actors.core.commodities``); a location lies in its region's widened
bounding box (``actors.core.regions``). Every violation is 422 ``validation-error``.

``to_command`` methods build the core commands; the gateway supplies ``ts`` (arrival time, epoch ms),
``party_id`` and ``linked_parties``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from actors.core.commands import AcceptProposal, AmendOrder, PlaceOrder, Side
from actors.core.commodities import COMMODITIES, CommoditySpec, QualityParam, canonical_commodity
from actors.core.ids import shard_of
from actors.core.regions import UnknownRegion, normalize_region, outside_region
from actors.core.roles import Role, is_trading
from actors.core.units import UNITS, to_kg
from gateway.edge.text import SafeText, TextRule

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


def _spec(info: ValidationInfo) -> CommoditySpec | None:
    """The spec of the model's (already validated) commodity, or None when it was invalid."""
    commodity = info.data.get("commodity")
    return COMMODITIES.get(commodity) if isinstance(commodity, str) else None


def _param(spec: CommoditySpec, name: str, what: str) -> QualityParam:
    param = spec.param(name)
    if param is None:
        known = ", ".join(p.name for p in spec.params)
        raise ValueError(f"unknown {what} parameter {name!r} for {spec.name}: use {known}")
    return param


class _Goods(Strict):
    """What orders and searches share: a commodity, a quantity in one of its units and quality
    figures within its parameters' valid ranges. Fields are validated in order, so ``commodity``
    comes first; the checks skip when it was invalid (its own error is reported)."""

    commodity: Commodity

    @field_validator("quantity", "min_order", check_fields=False)
    @classmethod
    def _unit(cls, q: Quantity | None, info: ValidationInfo) -> Quantity | None:
        spec = _spec(info)
        if q is not None and spec is not None and (problem := spec.unit_problem(q.unit)) is not None:
            raise ValueError(problem)
        return q

    @field_validator("quality", "quality_target", check_fields=False)
    @classmethod
    def _values(cls, values: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        spec = _spec(info)
        if spec is not None:
            for name, v in values.items():
                if (problem := _param(spec, name, str(info.field_name)).value_problem(v)) is not None:
                    raise ValueError(problem)
        return values

    @field_validator("quality_ranges", check_fields=False)
    @classmethod
    def _ranges(cls, ranges: dict[str, QualityRange], info: ValidationInfo) -> dict[str, QualityRange]:
        spec = _spec(info)
        if spec is not None:
            for name, r in ranges.items():
                if (problem := _param(spec, name, "quality_ranges").range_problem(r.min, r.max)) is not None:
                    raise ValueError(problem)
        return ranges


QualityRanges = dict[ParamName, QualityRange]
QualityTarget = dict[ParamName, float]


def _check_targets(ranges: dict[str, QualityRange], target: dict[str, float]) -> None:
    """Each target needs a range for its parameter and lies within it."""
    for name, t in target.items():
        r = ranges.get(name)
        if r is None:
            raise ValueError(f"quality_target {name} needs a quality_ranges entry for {name}")
        if not r.min <= t <= r.max:
            raise ValueError(f"quality_target {name} {t:g} lies outside its range [{r.min:g}, {r.max:g}]")


class _OrderBase(_Goods):
    client_order_id: ClientOrderId
    quantity: Quantity
    location: Location
    min_order: Quantity | None = Field(None, description="smallest fill accepted")
    allow_partial: bool = True
    valid_until: int | None = Field(None, ge=0, le=2**53, description="epoch ms; None = good till cancel")
    profile: Literal["price_time", "quality"] | None = None


class AvailabilityIn(_OrderBase):
    """A seller's availability (ask). ``quality`` holds measured values per spec parameter."""

    side: Literal["SELL"] = "SELL"
    price_paise_per_kg: Price
    quality: dict[ParamName, float] = Field(default_factory=dict, max_length=50)
    visibility: Literal["PUBLIC", "PRIVATE"] = "PUBLIC"
    allow_list: list[PartyId] = Field(default_factory=list, max_length=1000)

    def to_command(self, ts: int, party_id: str, linked: tuple[str, ...] = ()) -> PlaceOrder:
        return PlaceOrder(
            ts=ts,
            party_id=party_id,
            client_order_id=self.client_order_id,
            side=Side.SELL,
            commodity=self.commodity,
            region=self.location.region,
            quantity_kg=self.quantity.kg(),
            price=self.price_paise_per_kg,
            lat=self.location.lat,
            lon=self.location.lon,
            quality=dict(self.quality),
            city=self.location.city,
            district=self.location.district,
            visibility=self.visibility,
            allow_list=tuple(self.allow_list),
            min_order_kg=self.min_order.kg() if self.min_order else 0,
            allow_partial=self.allow_partial,
            valid_until=self.valid_until,
            linked_parties=linked,
            profile=self.profile,
        )


class RequirementIn(_OrderBase):
    """A buyer's requirement (bid). ``intent`` DIRECT_BUY allocates at once, NEGOTIATE proposes."""

    side: Literal["BUY"] = "BUY"
    max_price_paise_per_kg: Price
    quality_ranges: QualityRanges = Field(default_factory=dict, max_length=50)
    quality_target: QualityTarget = Field(default_factory=dict, max_length=50)
    max_distance_km: float | None = Field(None, gt=0, le=20000)
    intent: Literal["DIRECT_BUY", "NEGOTIATE"] = "DIRECT_BUY"
    visibility: Literal["PUBLIC", "PRIVATE"] = "PUBLIC"
    allow_list: list[PartyId] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _targets(self) -> RequirementIn:
        _check_targets(self.quality_ranges, self.quality_target)
        return self

    def to_command(self, ts: int, party_id: str, linked: tuple[str, ...] = ()) -> PlaceOrder:
        return PlaceOrder(
            ts=ts,
            party_id=party_id,
            client_order_id=self.client_order_id,
            side=Side.BUY,
            commodity=self.commodity,
            region=self.location.region,
            quantity_kg=self.quantity.kg(),
            price=self.max_price_paise_per_kg,
            lat=self.location.lat,
            lon=self.location.lon,
            quality_ranges={k: (r.min, r.max) for k, r in self.quality_ranges.items()},
            quality_target=dict(self.quality_target),
            city=self.location.city,
            district=self.location.district,
            max_distance_km=self.max_distance_km,
            visibility=self.visibility,
            allow_list=tuple(self.allow_list),
            min_order_kg=self.min_order.kg() if self.min_order else 0,
            allow_partial=self.allow_partial,
            valid_until=self.valid_until,
            intent=self.intent,
            linked_parties=linked,
            profile=self.profile,
        )


OrderIn = Annotated[AvailabilityIn | RequirementIn, Field(discriminator="side")]


class BatchIn(Strict):
    """Up to ``api_batch_max_orders`` orders; each needs ``side`` (SELL availability, BUY requirement)."""

    orders: list[OrderIn] = Field(min_length=1, max_length=10_000)


class SearchIn(_Goods):
    """A hypothetical requirement: ranked availabilities are returned, nothing is placed."""

    quantity: Quantity
    max_price_paise_per_kg: Price
    location: Location
    quality_ranges: QualityRanges = Field(default_factory=dict, max_length=50)
    quality_target: QualityTarget = Field(default_factory=dict, max_length=50)
    max_distance_km: float | None = Field(None, gt=0, le=20000)
    profile: Literal["price_time", "quality"] | None = None
    limit: int = Field(20, ge=1, le=200)

    @model_validator(mode="after")
    def _targets(self) -> SearchIn:
        _check_targets(self.quality_ranges, self.quality_target)
        return self

    def to_command(self, ts: int, party_id: str, linked: tuple[str, ...] = ()) -> PlaceOrder:
        return RequirementIn(
            client_order_id="search",
            commodity=self.commodity,
            quantity=self.quantity,
            location=self.location,
            max_price_paise_per_kg=self.max_price_paise_per_kg,
            quality_ranges=self.quality_ranges,
            quality_target=self.quality_target,
            max_distance_km=self.max_distance_km,
            profile=self.profile,
            min_order=None,
            valid_until=None,
        ).to_command(ts, party_id, linked)


def check_unit_for_id(quantity: Quantity | None, entity_id: str) -> None:
    """Raise ``RequestValidationError`` at ``body.quantity.unit`` when the commodity of the shard
    named in ``entity_id`` (``O-IN-GJ.cotton-7``) is not traded in ``quantity.unit``. Ids that name
    no listed commodity pass (the shard answers 404)."""
    sid = shard_of(entity_id)
    spec = COMMODITIES.get(sid.partition(".")[2]) if sid else None
    if quantity is None or spec is None or (problem := spec.unit_problem(quantity.unit)) is None:
        return
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("body", "quantity", "unit"), "msg": problem, "input": quantity.unit}]
    )


class AmendIn(Strict):
    """New total quantity and/or price (paise/kg); at least one."""

    quantity: Quantity | None = None
    price_paise_per_kg: Price | None = None

    @model_validator(mode="after")
    def _some(self) -> AmendIn:
        if self.quantity is None and self.price_paise_per_kg is None:
            raise ValueError("give quantity and/or price_paise_per_kg")
        return self

    def to_command(self, ts: int, party_id: str, order_id: str) -> AmendOrder:
        """The core command; raises ``RequestValidationError`` (422) when ``quantity``'s unit is not
        one the order's commodity (named by the shard in ``order_id``) is traded in."""
        check_unit_for_id(self.quantity, order_id)
        return AmendOrder(
            ts=ts,
            party_id=party_id,
            order_id=order_id,
            quantity_kg=self.quantity.kg() if self.quantity else None,
            price=self.price_paise_per_kg,
        )


class AcceptIn(Strict):
    """Accept a proposal: reserve ``quantity`` (default: proposed) for ``hold_minutes``."""

    quantity: Quantity | None = None
    hold_minutes: int = Field(30, ge=1, le=7 * 24 * 60)

    def to_command(self, ts: int, party_id: str, proposal_id: str) -> AcceptProposal:
        """The core command; raises ``RequestValidationError`` (422) for a unit the proposal's
        commodity is not traded in (see :meth:`AmendIn.to_command`)."""
        check_unit_for_id(self.quantity, proposal_id)
        return AcceptProposal(
            ts=ts,
            party_id=party_id,
            proposal_id=proposal_id,
            quantity_kg=self.quantity.kg() if self.quantity else None,
            hold_ms=self.hold_minutes * 60_000,
        )


class EmptyIn(Strict):
    """No fields (cancel, reject, confirm, release)."""


# --- admin ---------------------------------------------------------------------------------------

Kyc = Literal["PENDING", "VERIFIED", "REJECTED", "SUSPENDED"]
PAN = r"^[A-Z]{5}[0-9]{4}[A-Z]$"
GSTIN = r"^[0-9]{2}[A-Z0-9]{13}$"
MOBILE = r"^\+?[0-9 -]{10,20}$"


class PartyIn(Strict):
    """A counterparty. ``credit_limit_paise``: total notional exposure allowed (paise; null = none).
    PAN/GSTIN upper-case; mobile is stored as its last 10 digits."""

    party_id: PartyId
    name: SafeText | None = None
    role: RoleIn = Role.TRADER
    kyc_status: Kyc = "PENDING"
    sanctioned: bool = False
    pan: str | None = Field(None, pattern=PAN)
    gstin: str | None = Field(None, pattern=GSTIN)
    mobile: str | None = Field(None, pattern=MOBILE)
    country: str = Field("IN", pattern=r"^[A-Z]{2}$")
    credit_limit_paise: int | None = Field(None, ge=0, le=10**15)
    linked_parties: list[PartyId] = Field(default_factory=list, max_length=100)

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for ``persistence.parties.PartyRepository.create``."""
        d = self.model_dump()
        d["credit_limit"] = d.pop("credit_limit_paise")
        return d


class PartyPatch(Strict):
    """Fields to change on a party; absent fields are kept."""

    name: SafeText | None = None
    role: RoleIn | None = None
    kyc_status: Kyc | None = None
    sanctioned: bool | None = None
    pan: str | None = Field(None, pattern=PAN)
    gstin: str | None = Field(None, pattern=GSTIN)
    mobile: str | None = Field(None, pattern=MOBILE)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    credit_limit_paise: int | None = Field(None, ge=0, le=10**15)
    linked_parties: list[PartyId] | None = Field(None, max_length=100)

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent, keyed as ``PartyRepository.update`` expects."""
        d = self.model_dump(exclude_unset=True)
        if "credit_limit_paise" in d:
            d["credit_limit"] = d.pop("credit_limit_paise")
        for k in ("role", "kyc_status", "sanctioned", "country", "linked_parties"):
            if k in d and d[k] is None:
                d.pop(k)
        return d


class ApiKeyIn(Strict):
    """Issue a key. Trading roles (seller, buyer, trader) need ``party_id``."""

    party_id: PartyId | None = None
    roles: list[RoleIn] = Field(min_length=1, max_length=6)
    label: SafeText | None = None

    @model_validator(mode="after")
    def _party(self) -> ApiKeyIn:
        if is_trading(self.roles) and not self.party_id:
            raise ValueError("trading roles need party_id")
        return self


class ShardIn(Strict):
    """A shard key."""

    region: RegionCode
    commodity: Commodity


def to_jsonable(x: Any) -> Any:
    """Make actor results (dataclasses, enums, tuples) JSON-friendly."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "to_dict"):
        return to_jsonable(x.to_dict())
    if hasattr(x, "__dataclass_fields__"):
        return {f: to_jsonable(getattr(x, f)) for f in x.__dataclass_fields__}
    return str(x)
