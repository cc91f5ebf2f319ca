"""Request bodies of the order routes: availabilities, requirements, batches, searches, amends and
accepts, each checked against its commodity's spec, and the core commands they become.

``to_command`` methods build the core commands; the gateway supplies ``ts`` (arrival time, epoch ms),
``party_id`` and ``linked_parties``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationInfo, field_validator, model_validator

from actors.core.commands import AcceptProposal, AmendOrder, PlaceOrder, Side
from actors.core.commodities import COMMODITIES, CommoditySpec, QualityParam
from actors.core.ids import shard_of
from gateway.schemas_fields import (
    ClientOrderId,
    Commodity,
    Location,
    ParamName,
    PartyId,
    Price,
    QualityRange,
    Quantity,
    Strict,
)


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
