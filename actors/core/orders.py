"""Resting orders of a shard's book: availabilities (SELL, asks) and requirements (BUY, bids).

Quantities are integer kg, prices integer paise/kg. For every order, at all times:
``open_kg + reserved_kg + allocated_kg + cancelled_kg + expired_kg == quantity_kg`` (quantity
conservation, ARCHITECTURE.md). ``priority`` is the sequence number that sets time priority: the
order's acceptance seq, or the seq of the amendment that lost it priority.
"""

from __future__ import annotations

from typing import Any

import msgspec

OPEN = "OPEN"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"


class Order(msgspec.Struct, kw_only=True, gc=False):
    """One order. Mutated only by the projector (:mod:`actors.core.projector`).

    Not tracked by the garbage collector (``gc=False``): an order holds only strings, numbers and
    dicts/tuples of them, so it can never be part of a reference cycle, and a book of thousands of
    orders then costs the collector nothing (measured: about 10% of ``bench core`` time).

    ``quality``: availability's measured values ``{param: value}``; ``quality_ranges``: a
    requirement's accepted ``{param: (low, high)}``; ``quality_target``: its preferred values.
    ``allow_list`` and ``linked_parties`` are sorted tuples of party ids. Quantities kg, price
    paise/kg, times epoch ms, ``max_distance_km`` km. The ``ORDER_ACCEPTED`` payload holds a copy.
    """

    order_id: str
    party_id: str
    client_order_id: str
    side: str
    commodity: str
    region: str
    quantity_kg: int
    open_kg: int
    reserved_kg: int = 0
    allocated_kg: int = 0
    cancelled_kg: int = 0
    expired_kg: int = 0
    price: int
    quality: dict[str, float] = msgspec.field(default_factory=dict)
    quality_ranges: dict[str, tuple[float, float]] = msgspec.field(default_factory=dict)
    quality_target: dict[str, float] = msgspec.field(default_factory=dict)
    lat: float
    lon: float
    city: str | None = None
    district: str | None = None
    max_distance_km: float | None = None
    visibility: str = "PUBLIC"
    allow_list: tuple[str, ...] = ()
    min_order_kg: int = 0
    allow_partial: bool = True
    valid_until: int | None = None
    intent: str | None = None
    linked_parties: tuple[str, ...] = ()
    profile: str | None = None
    status: str = OPEN
    created_ts: int
    updated_ts: int
    priority: int
    near_duplicate_of: str | None = None

    @property
    def is_buy(self) -> bool:
        return self.side == "BUY"

    @property
    def is_live(self) -> bool:
        """Still in the book: open or reserved quantity left."""
        return self.open_kg > 0 or self.reserved_kg > 0

    def refresh_status(self) -> None:
        """Derive OPEN / PARTIALLY_FILLED / FILLED after a fill or reservation change."""
        if self.status in (CANCELLED, EXPIRED):
            return
        if self.open_kg == 0 and self.reserved_kg == 0:
            self.status = FILLED if self.allocated_kg > 0 else self.status
        elif self.allocated_kg > 0 or self.reserved_kg > 0:
            self.status = PARTIALLY_FILLED
        else:
            self.status = OPEN

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (ranges and id tuples as lists), keys in field order."""
        return {
            "order_id": self.order_id,
            "party_id": self.party_id,
            "client_order_id": self.client_order_id,
            "side": self.side,
            "commodity": self.commodity,
            "region": self.region,
            "quantity_kg": self.quantity_kg,
            "open_kg": self.open_kg,
            "reserved_kg": self.reserved_kg,
            "allocated_kg": self.allocated_kg,
            "cancelled_kg": self.cancelled_kg,
            "expired_kg": self.expired_kg,
            "price": self.price,
            "quality": dict(self.quality),
            "quality_ranges": {k: [v[0], v[1]] for k, v in self.quality_ranges.items()},
            "quality_target": dict(self.quality_target),
            "lat": self.lat,
            "lon": self.lon,
            "city": self.city,
            "district": self.district,
            "max_distance_km": self.max_distance_km,
            "visibility": self.visibility,
            "allow_list": list(self.allow_list),
            "min_order_kg": self.min_order_kg,
            "allow_partial": self.allow_partial,
            "valid_until": self.valid_until,
            "intent": self.intent,
            "linked_parties": list(self.linked_parties),
            "profile": self.profile,
            "status": self.status,
            "created_ts": self.created_ts,
            "updated_ts": self.updated_ts,
            "priority": self.priority,
            "near_duplicate_of": self.near_duplicate_of,
        }

    def copy(self) -> Order:
        """A shallow copy (nested dicts are never mutated in place, so they may be shared)."""
        return msgspec.structs.replace(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Order:
        """Inverse of :meth:`to_dict`. Raises ``msgspec.ValidationError`` on a malformed dict."""
        return msgspec.convert(d, cls)
