"""Event payloads: what each event type of a shard records, one :class:`msgspec.Struct` per type.

Readers use attributes (``ev.payload.quantity_kg``), never string keys. Ids are strings; kg and
paise/kg are ints. :data:`PAYLOAD_TYPES` maps each event type to its Struct (the settlement
stream's types too, so they share the codec of :mod:`actors.core.event_codecs`). The payload table
in docs/contracts.md is generated from these Structs (:func:`payload_table`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.core.orders import Order
from actors.core.payload import Payload
from actors.core.posttrade.events import SETTLEMENT_PAYLOAD_TYPES

ORDER_ACCEPTED = "ORDER_ACCEPTED"
ORDER_REJECTED = "ORDER_REJECTED"
COMMAND_REJECTED = "COMMAND_REJECTED"
ALLOCATED = "ALLOCATED"
PROPOSED = "PROPOSED"
PROPOSAL_REJECTED = "PROPOSAL_REJECTED"
RESERVED = "RESERVED"
RELEASED = "RELEASED"
CANCELLED = "CANCELLED"
AMENDED = "AMENDED"
EXPIRED = "EXPIRED"
CONFIRMED = "CONFIRMED"
SHARD_HALTED = "SHARD_HALTED"
SHARD_RESUMED = "SHARD_RESUMED"
PRICE_BAND_SET = "PRICE_BAND_SET"
MARKET_REFERENCE = "MARKET_REFERENCE"
KILL_SWITCH = "KILL_SWITCH"


class OrderAccepted(Payload, frozen=True, gc=False):
    """An order entered the book: the order as accepted (a copy; later changes are other events)."""

    order: Order


class OrderRejected(Payload, frozen=True, gc=False):
    """A place command was refused. Ids are None when they were not valid ids."""

    party_id: str | None
    client_order_id: str | None
    reason: str
    detail: str


class CommandRejected(Payload, frozen=True, gc=False):
    """Any other command was refused. ``command``: place/cancel/amend/accept/...; ``target``: the
    order, proposal or reservation id it named (None when not a valid id)."""

    command: str
    party_id: str | None
    target: str | None
    reason: str
    detail: str


class _Match(Payload, frozen=True, gc=False):
    """Fields shared by proposals and allocations. ``taker_command``: place, amend or confirm;
    ``price`` paise/kg (the resting order's); ``score`` in [0, 1] with its ``breakdown``; ``risk`` the
    risk decision (outcome, reasons, penalty, trust, score, tiers, model_versions)."""

    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    taker_order_id: str
    taker_side: str
    taker_command: str
    quantity_kg: int
    price: int
    score: float
    breakdown: dict[str, Any]
    risk: dict[str, Any]


class Proposed(_Match, frozen=True, gc=False):
    """A match proposal for a NEGOTIATE requirement: nothing is reserved yet."""

    proposal_id: str


class Allocated(_Match, frozen=True, gc=False):
    """Quantity allocated between two orders (open -> allocated on both)."""

    allocation_id: str
    reservation_id: str | None = None


class Confirmed(Allocated, frozen=True, gc=False):
    """A confirmed reservation became an allocation: ``reservation_id`` is set and the quantity moves
    from reserved to allocated on both orders; ``taker_command`` is ``confirm``."""


class ProposalRejected(Payload, frozen=True, gc=False):
    """The buyer turned a proposal down."""

    proposal_id: str
    party_id: str


class _Reservation(Payload, frozen=True, gc=False):
    """Fields shared by reservation events: the two orders and parties, kg and price (paise/kg)."""

    reservation_id: str
    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    quantity_kg: int
    price: int


class Reserved(_Reservation, frozen=True, gc=False):
    """The buyer accepted a proposal: ``quantity_kg`` moves from open to reserved on both orders until
    ``hold_until`` (epoch ms)."""

    proposal_id: str
    hold_until: int


class Released(_Reservation, frozen=True, gc=False):
    """A reservation ended without allocation; ``reason``: SELLER_RELEASED, BUYER_RELEASED or
    HOLD_EXPIRED. Its quantity returns to open (or to cancelled/expired on a closed order)."""

    reason: str


class Cancelled(Payload, frozen=True, gc=False):
    """The owner cancelled the order's open quantity (kg)."""

    order_id: str
    cancelled_kg: int


class Expired(Payload, frozen=True, gc=False):
    """The order reached ``valid_until``: its open quantity (kg, may be 0 when all of it is
    reserved) expires and the order closes."""

    order_id: str
    expired_kg: int


class Amended(Payload, frozen=True, gc=False):
    """New total ``quantity_kg`` and ``open_kg``, new ``price`` (paise/kg); ``priority`` is the seq that
    sets time priority (this event's seq when ``priority_lost``)."""

    order_id: str
    quantity_kg: int
    open_kg: int
    price: int
    priority_lost: bool
    priority: int


class BreakerTrigger(msgspec.Struct, frozen=True, gc=False):
    """What tripped the circuit breaker: the trade (``allocation_id``, ``trade_price`` paise/kg),
    the price it moved from (``reference_price`` paise/kg; ``reference_kind`` ``trade`` = the trade
    price one window earlier, ``market`` = the shard's market reference), the move and the threshold in
    basis points, and the window (ms)."""

    allocation_id: str
    trade_price: int
    reference_price: int
    reference_kind: str
    move_bp: int
    threshold_bp: int
    window_ms: int


class ShardHalted(Payload, frozen=True, gc=False):
    """The shard stopped taking new orders. ``kind``: ``OPERATOR`` (until resumed; ``halted_until``
    None) or ``CIRCUIT_BREAKER`` (until ``halted_until`` epoch ms, with its ``trigger``)."""

    kind: str
    reason: str
    operator_id: str | None
    halted_until: int | None
    trigger: BreakerTrigger | None


class ShardResumed(Payload, frozen=True, gc=False):
    """The halt ended. ``kind``: ``OPERATOR`` (a resume command) or ``AUTO`` (the first command
    with ``ts >= halted_until`` of a circuit-breaker halt; the event's ts is ``halted_until``)."""

    kind: str
    operator_id: str | None


class PriceBandSet(Payload, frozen=True, gc=False):
    """An operator set the shard's band rule: ``mode`` default/percent/range/off, ``band_bp`` basis
    points around the reference (percent), ``min_price``/``max_price`` paise/kg (range)."""

    operator_id: str
    mode: str
    band_bp: int | None
    min_price: int | None
    max_price: int | None


class MarketReference(Payload, frozen=True, gc=False):
    """The shard's market reference price (paise/kg = Rs/quintal) from ``source`` as of ``as_of``."""

    price: int
    source: str
    as_of: str


class KillSwitchPulled(Payload, frozen=True, gc=False):
    """An operator cancelled every open order of ``party_id`` in this shard: ``orders`` orders,
    ``cancelled_kg`` kg in all; one CANCELLED event per order follows."""

    party_id: str
    operator_id: str
    orders: int
    cancelled_kg: int


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    ORDER_ACCEPTED: OrderAccepted,
    ORDER_REJECTED: OrderRejected,
    COMMAND_REJECTED: CommandRejected,
    ALLOCATED: Allocated,
    PROPOSED: Proposed,
    PROPOSAL_REJECTED: ProposalRejected,
    RESERVED: Reserved,
    RELEASED: Released,
    CANCELLED: Cancelled,
    AMENDED: Amended,
    EXPIRED: Expired,
    CONFIRMED: Confirmed,
    SHARD_HALTED: ShardHalted,
    SHARD_RESUMED: ShardResumed,
    PRICE_BAND_SET: PriceBandSet,
    MARKET_REFERENCE: MarketReference,
    KILL_SWITCH: KillSwitchPulled,
}
EVENT_TYPES = frozenset(PAYLOAD_TYPES)  # the shards' event types
# The settlement stream's payloads (actors/core/posttrade/events.py) share the codec.
PAYLOAD_TYPES.update(SETTLEMENT_PAYLOAD_TYPES)


_SCALAR_NAMES: dict[type, str] = {
    msgspec.inspect.StrType: "str",
    msgspec.inspect.IntType: "int",
    msgspec.inspect.FloatType: "float",
    msgspec.inspect.BoolType: "bool",
    msgspec.inspect.NoneType: "null",
    msgspec.inspect.DictType: "object",
}


def _type_name(tp: Any) -> str:
    if isinstance(tp, msgspec.inspect.StructType):
        return tp.cls.__name__
    if isinstance(tp, msgspec.inspect.UnionType):
        return " or ".join(_type_name(t) for t in tp.types)
    return _SCALAR_NAMES.get(type(tp), "any")


def payload_table() -> str:
    """The Markdown table of every event type's payload fields, generated from the Structs (the
    table in docs/contracts.md must equal this; a unit test checks it)."""
    lines = ["| event type | payload class | schema | fields |", "|---|---|---|---|"]
    for etype, cls in PAYLOAD_TYPES.items():
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        fields = ", ".join(f"`{f.name}`: {_type_name(f.type)}" for f in info.fields)
        lines.append(f"| `{etype}` | `{cls.__name__}` | {cls.SCHEMA} | {fields} |")
    return "\n".join(lines)
