"""Events: the facts a shard records. Recovery applies them; it never re-runs matching or risk.

Every event has the shard's gap-free sequence number ``seq`` (1, 2, 3...), a ``type``, the command
timestamp ``ts`` (epoch ms), a ``schema_version`` and a typed ``payload``: one
:class:`msgspec.Struct` per event type (:data:`PAYLOAD_TYPES`). Readers use attributes
(``ev.payload.quantity_kg``), never string keys. Ids are strings; kg and paise/kg are ints.

This module holds :class:`Event` and the codecs of whole events: a stored row
(:func:`event_from_row`) and a whole log as MessagePack (:func:`encode_events` /
:func:`decode_events`: ``[seq, type, ts, schema_version, payload]`` arrays). It is also the one
import path of the event types and payload Structs (:mod:`actors.core.event_payloads`) and of the
payload codecs and schema upgrades (:mod:`actors.core.event_codecs`), re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from actors.core.event_codecs import UPGRADES as UPGRADES
from actors.core.event_codecs import msgpack_to_json as msgpack_to_json
from actors.core.event_codecs import payload_from_builtins as payload_from_builtins
from actors.core.event_codecs import payload_from_json as payload_from_json
from actors.core.event_codecs import payload_from_msgpack as payload_from_msgpack
from actors.core.event_codecs import payload_to_json as payload_to_json
from actors.core.event_codecs import payload_to_msgpack as payload_to_msgpack
from actors.core.event_payloads import ALLOCATED as ALLOCATED
from actors.core.event_payloads import AMENDED as AMENDED
from actors.core.event_payloads import CANCELLED as CANCELLED
from actors.core.event_payloads import COMMAND_REJECTED as COMMAND_REJECTED
from actors.core.event_payloads import CONFIRMED as CONFIRMED
from actors.core.event_payloads import EVENT_TYPES as EVENT_TYPES
from actors.core.event_payloads import EXPIRED as EXPIRED
from actors.core.event_payloads import KILL_SWITCH as KILL_SWITCH
from actors.core.event_payloads import MARKET_REFERENCE as MARKET_REFERENCE
from actors.core.event_payloads import ORDER_ACCEPTED as ORDER_ACCEPTED
from actors.core.event_payloads import ORDER_REJECTED as ORDER_REJECTED
from actors.core.event_payloads import PAYLOAD_TYPES as PAYLOAD_TYPES
from actors.core.event_payloads import PRICE_BAND_SET as PRICE_BAND_SET
from actors.core.event_payloads import PROPOSAL_REJECTED as PROPOSAL_REJECTED
from actors.core.event_payloads import PROPOSED as PROPOSED
from actors.core.event_payloads import RELEASED as RELEASED
from actors.core.event_payloads import RESERVED as RESERVED
from actors.core.event_payloads import SHARD_HALTED as SHARD_HALTED
from actors.core.event_payloads import SHARD_RESUMED as SHARD_RESUMED
from actors.core.event_payloads import Allocated as Allocated
from actors.core.event_payloads import Amended as Amended
from actors.core.event_payloads import BreakerTrigger as BreakerTrigger
from actors.core.event_payloads import Cancelled as Cancelled
from actors.core.event_payloads import CommandRejected as CommandRejected
from actors.core.event_payloads import Confirmed as Confirmed
from actors.core.event_payloads import Expired as Expired
from actors.core.event_payloads import KillSwitchPulled as KillSwitchPulled
from actors.core.event_payloads import MarketReference as MarketReference
from actors.core.event_payloads import OrderAccepted as OrderAccepted
from actors.core.event_payloads import OrderRejected as OrderRejected
from actors.core.event_payloads import PriceBandSet as PriceBandSet
from actors.core.event_payloads import ProposalRejected as ProposalRejected
from actors.core.event_payloads import Proposed as Proposed
from actors.core.event_payloads import Released as Released
from actors.core.event_payloads import Reserved as Reserved
from actors.core.event_payloads import ShardHalted as ShardHalted
from actors.core.event_payloads import ShardResumed as ShardResumed
from actors.core.event_payloads import payload_table as payload_table
from actors.core.orders import Order as Order
from actors.core.payload import SCHEMA_VERSION as SCHEMA_VERSION
from actors.core.payload import Payload as Payload
from actors.core.posttrade.events import SETTLEMENT_PAYLOAD_TYPES as SETTLEMENT_PAYLOAD_TYPES


class Event:
    """One recorded fact of a shard. Compared by value; ``to_dict``/``from_dict`` round-trip JSON.

    ``payload`` is the type's :class:`Payload` Struct; a dict (e.g. from ``json.loads``) is converted
    to it (raises ``KeyError`` for an unknown type, ``msgspec.ValidationError`` for a bad payload).
    """

    __slots__ = ("seq", "type", "ts", "payload", "schema_version")

    def __init__(self, seq: int, type: str, ts: int, payload: Any, schema_version: int = SCHEMA_VERSION):
        self.seq = seq
        self.type = type
        self.ts = ts
        if isinstance(payload, dict):
            payload = payload_from_builtins(type, payload, schema_version)
            schema_version = PAYLOAD_TYPES[type].SCHEMA
        self.payload: Any = payload
        self.schema_version = schema_version

    def to_dict(self) -> dict[str, Any]:
        """``{"seq", "type", "ts", "schema_version", "payload": <JSON-able dict>}``."""
        return {
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "schema_version": self.schema_version,
            "payload": msgspec.to_builtins(self.payload),
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


def event_from_row(seq: int, etype: str, ts: int, schema_version: int, payload: str | bytes) -> Event:
    """An :class:`Event` from a stored row ``(seq, type, ts, schema_version, payload)``: ``payload``
    as MessagePack ``bytes`` (:func:`payload_to_msgpack`) or as JSON ``str`` (rows stored as JSON).
    Raises ``KeyError`` (unknown type), ``ValueError`` (newer schema) or ``msgspec`` errors."""
    if isinstance(payload, str):
        body = payload_from_json(etype, payload, int(schema_version))
    else:
        body = payload_from_msgpack(etype, payload, int(schema_version))
    return Event(int(seq), etype, int(ts), body, PAYLOAD_TYPES[etype].SCHEMA)


class _Envelope(msgspec.Struct, array_like=True, gc=False):
    seq: int
    type: str
    ts: int
    schema_version: int
    payload: msgspec.Raw


_mp_encoder = msgspec.msgpack.Encoder()
_mp_envelopes = msgspec.msgpack.Decoder(list[_Envelope])


def encode_events(events: Iterable[Event]) -> bytes:
    """Events -> MessagePack bytes: an array of ``[seq, type, ts, schema_version, payload]``."""
    return _mp_encoder.encode([(e.seq, e.type, e.ts, e.schema_version, e.payload) for e in events])


def decode_events(data: bytes) -> list[Event]:
    """Inverse of :func:`encode_events`; older schema versions are upgraded. Raises
    ``msgspec.DecodeError``/``ValidationError`` on bad bytes, ``KeyError`` on an unknown type."""
    out: list[Event] = []
    for env in _mp_envelopes.decode(data):
        payload = payload_from_msgpack(env.type, env.payload, env.schema_version)
        out.append(Event(env.seq, env.type, env.ts, payload, PAYLOAD_TYPES[env.type].SCHEMA))
    return out
