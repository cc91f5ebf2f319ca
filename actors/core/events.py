"""Events: the facts a shard records. Recovery applies them; it never re-runs matching or risk.

Every event has the shard's gap-free sequence number ``seq`` (1, 2, 3...), a ``type``, the command
timestamp ``ts`` (epoch ms), a ``schema_version`` and a JSON-serialisable ``payload``.

Payloads by type (ids are strings; kg and paise/kg are ints):

- ``ORDER_ACCEPTED``: ``{"order": <order dict, see orders.Order.to_dict>}``
- ``ORDER_REJECTED``: ``{"party_id", "client_order_id", "reason", "detail"}`` (place commands)
- ``COMMAND_REJECTED``: ``{"command", "party_id", "target", "reason", "detail"}`` (other commands)
- ``ALLOCATED``: ``{"allocation_id", "buy_order_id", "sell_order_id", "buyer_id", "seller_id",
  "taker_order_id", "quantity_kg", "price", "score", "breakdown", "risk", "reservation_id"}``
- ``PROPOSED``: ``{"proposal_id", "buy_order_id", "sell_order_id", "buyer_id", "seller_id",
  "taker_order_id", "quantity_kg", "price", "score", "breakdown", "risk"}``
- ``PROPOSAL_REJECTED``: ``{"proposal_id", "party_id"}``
- ``RESERVED``: ``{"reservation_id", "proposal_id", "buy_order_id", "sell_order_id", "quantity_kg",
  "price", "hold_until"}``
- ``RELEASED``: ``{"reservation_id", "reason"}`` (``SELLER_RELEASED``, ``BUYER_RELEASED``, ``HOLD_EXPIRED``)
- ``CANCELLED``: ``{"order_id", "cancelled_kg"}``
- ``AMENDED``: ``{"order_id", "quantity_kg", "price", "priority_lost", "priority"}``
- ``EXPIRED``: ``{"order_id", "expired_kg"}``
- ``CONFIRMED``: an allocation from a confirmed reservation: the ``ALLOCATED`` payload with
  ``reservation_id`` set (quantity moves from reserved to allocated on both orders)
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

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

EVENT_TYPES = frozenset(
    {
        ORDER_ACCEPTED,
        ORDER_REJECTED,
        COMMAND_REJECTED,
        ALLOCATED,
        PROPOSED,
        PROPOSAL_REJECTED,
        RESERVED,
        RELEASED,
        CANCELLED,
        AMENDED,
        EXPIRED,
        CONFIRMED,
    }
)


class Event:
    """One recorded fact of a shard. Compared by value; ``to_dict``/``from_dict`` round-trip JSON."""

    __slots__ = ("seq", "type", "ts", "payload", "schema_version")

    def __init__(
        self, seq: int, type: str, ts: int, payload: dict[str, Any], schema_version: int = SCHEMA_VERSION
    ):
        self.seq = seq
        self.type = type
        self.ts = ts
        self.payload = payload
        self.schema_version = schema_version

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "schema_version": self.schema_version,
            "payload": self.payload,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(d["seq"], d["type"], d["ts"], d["payload"], d.get("schema_version", SCHEMA_VERSION))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.seq, self.type, self.ts, self.schema_version, self.payload) == (
            other.seq,
            other.type,
            other.ts,
            other.schema_version,
            other.payload,
        )

    def __repr__(self) -> str:
        return f"Event(seq={self.seq}, type={self.type!r}, ts={self.ts}, payload={self.payload!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Event, (self.seq, self.type, self.ts, self.payload, self.schema_version))
