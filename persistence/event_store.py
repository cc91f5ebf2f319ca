"""Event store rows: a shard batch as row tuples (events as MessagePack, projections), stored rows back
to events or JSON, snapshot codecs.

Two halves:

- :func:`batch_rows` is pure (no I/O): it turns a batch of :class:`actors.core.events.Event` plus the current
  state of the orders the batch touched into row tuples for each table (:class:`BatchRows`). The shard
  actor runs it: each event's payload is encoded once, as MessagePack (:func:`event_tuple`), into
  the ``events.body`` ``bytea`` column (docs/contracts.md, "Storage format").
- :class:`persistence.pg_store.PostgresEventStore` (the :class:`persistence.store.EventStore`
  protocol on PostgreSQL) owns nothing but an asyncpg pool and writes :class:`BatchRows` with
  binary ``COPY`` (``method="copy"``, the default; measured faster, see ``bench/shard.py``) or
  ``executemany``. Fencing: the batch's first seq must follow the shard's committed max seq and the
  primary key ``(shard_id, seq)`` rejects a concurrent writer of the same seq; either way
  :class:`~persistence.store.SeqConflict` is raised and nothing is written.
- :func:`event_row` / :func:`decode_event`: the one place event rows are turned back into events;
  a stored payload is MessagePack ``bytes`` (``body``) or, for rows stored before migration 0009,
  JSON ``str`` (``payload``): :func:`stored_payload` picks it from a row, :func:`payload_json` /
  :func:`payload_dict` give the JSON form of either to readers that serve JSON.

Units: quantities kg (int), prices paise/kg (int), ``ts`` epoch ms.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.core import events as ev
from persistence.store import EventRow

CONFIRMED = ev.CONFIRMED
_ALLOCATING = frozenset({ev.ALLOCATED, CONFIRMED})

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

EVENT_COLS = ("shard_id", "seq", "type", "schema_version", "body", "ts")
"""Columns of a :attr:`BatchRows.events` tuple; ``body``: the payload as MessagePack bytes."""
ORDER_COLS = (
    "order_id",
    "shard_id",
    "party_id",
    "client_order_id",
    "side",
    "commodity",
    "region",
    "quantity_kg",
    "open_kg",
    "reserved_kg",
    "allocated_kg",
    "cancelled_kg",
    "expired_kg",
    "price",
    "status",
    "created_ts",
    "updated_ts",
    "last_seq",
    "doc",
)
ALLOCATION_COLS = (
    "allocation_id",
    "shard_id",
    "seq",
    "ts",
    "buy_order_id",
    "sell_order_id",
    "buyer_id",
    "seller_id",
    "taker_order_id",
    "quantity_kg",
    "price",
    "score",
    "breakdown",
    "risk",
    "model_versions",
    "reservation_id",
)
PROPOSAL_COLS = (
    "proposal_id",
    "shard_id",
    "seq",
    "ts",
    "buy_order_id",
    "sell_order_id",
    "buyer_id",
    "seller_id",
    "quantity_kg",
    "price",
    "status",
    "doc",
)
RESERVATION_COLS = (
    "reservation_id",
    "proposal_id",
    "shard_id",
    "seq",
    "buy_order_id",
    "sell_order_id",
    "quantity_kg",
    "price",
    "hold_until",
    "status",
    "release_reason",
)


@dataclass(slots=True)
class BatchRows:
    """Row tuples for one shard batch, in the column order of the ``*_COLS`` constants.

    ``proposal_status``: ``(proposal_id, status)``; ``reservation_status``: ``(reservation_id,
    status, release_reason)`` for rows created in earlier batches (or this one: applied after inserts).
    ``last_seq`` is the highest event seq of the batch (0 when empty).
    """

    shard_id: str
    events: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    allocations: list[tuple[Any, ...]] = field(default_factory=list)
    proposals: list[tuple[Any, ...]] = field(default_factory=list)
    reservations: list[tuple[Any, ...]] = field(default_factory=list)
    proposal_status: list[tuple[Any, ...]] = field(default_factory=list)
    reservation_status: list[tuple[Any, ...]] = field(default_factory=list)
    last_seq: int = 0


def order_ids_of(event: ev.Event) -> list[str]:
    """Order ids an event changes (for the ``orders`` projection)."""
    p = event.payload
    if event.type == ev.ORDER_ACCEPTED:
        return [p.order.order_id]
    if event.type in _ALLOCATING or event.type == ev.RESERVED:
        return [p.buy_order_id, p.sell_order_id]
    if event.type in (ev.CANCELLED, ev.AMENDED, ev.EXPIRED):
        return [p.order_id]
    return []


def order_row(shard_id: str, doc: dict[str, Any], last_seq: int) -> tuple[Any, ...]:
    """One ``orders`` projection row from an order dict (``actors.core.orders.Order.to_dict``)."""
    return (
        doc["order_id"],
        shard_id,
        doc["party_id"],
        doc["client_order_id"],
        str(doc["side"]),
        doc["commodity"],
        doc["region"],
        int(doc["quantity_kg"]),
        int(doc["open_kg"]),
        int(doc.get("reserved_kg") or 0),
        int(doc.get("allocated_kg") or 0),
        int(doc.get("cancelled_kg") or 0),
        int(doc.get("expired_kg") or 0),
        int(doc["price"]),
        str(doc["status"]),
        doc.get("created_ts"),
        doc.get("updated_ts"),
        last_seq,
        _dumps(doc),
    )


def batch_rows(
    shard_id: str,
    events: Sequence[ev.Event],
    order_docs: Iterable[dict[str, Any]],
) -> BatchRows:
    """Rows for one batch: every event, the final state of each touched order (``order_docs``, one
    dict per order, current after the batch), new allocations/proposals/reservations and status
    changes of earlier ones. Pure."""
    rows = BatchRows(shard_id)
    last = 0
    for e in events:
        p = e.payload
        rows.events.append(event_tuple(shard_id, e))
        last = e.seq
        t = e.type
        if t in _ALLOCATING:
            risk = p.risk
            mv = risk.get("model_versions") if isinstance(risk, dict) else None
            rows.allocations.append(
                (
                    p.allocation_id,
                    shard_id,
                    e.seq,
                    e.ts,
                    p.buy_order_id,
                    p.sell_order_id,
                    p.buyer_id,
                    p.seller_id,
                    p.taker_order_id,
                    int(p.quantity_kg),
                    int(p.price),
                    p.score,
                    _dumps(p.breakdown),
                    _dumps(risk),
                    _dumps(mv or {}),
                    p.reservation_id,
                )
            )
            if p.reservation_id or t == CONFIRMED:
                rows.reservation_status.append((p.reservation_id, "CONFIRMED", None))
        elif t == ev.PROPOSED:
            rows.proposals.append(
                (
                    p.proposal_id,
                    shard_id,
                    e.seq,
                    e.ts,
                    p.buy_order_id,
                    p.sell_order_id,
                    p.buyer_id,
                    p.seller_id,
                    int(p.quantity_kg),
                    int(p.price),
                    "PROPOSED",
                    ev.payload_to_json(p),
                )
            )
        elif t == ev.PROPOSAL_REJECTED:
            rows.proposal_status.append((p.proposal_id, "REJECTED"))
        elif t == ev.RESERVED:
            rows.reservations.append(
                (
                    p.reservation_id,
                    p.proposal_id,
                    shard_id,
                    e.seq,
                    p.buy_order_id,
                    p.sell_order_id,
                    int(p.quantity_kg),
                    int(p.price),
                    p.hold_until,
                    "RESERVED",
                    None,
                )
            )
            if p.proposal_id:
                rows.proposal_status.append((p.proposal_id, "ACCEPTED"))
        elif t == ev.RELEASED:
            rows.reservation_status.append((p.reservation_id, "RELEASED", p.reason))
    rows.last_seq = last
    rows.orders = [order_row(shard_id, d, last) for d in order_docs]
    return rows


def event_tuple(stream_id: str, e: ev.Event) -> tuple[str, int, str, int, bytes, int]:
    """One :attr:`BatchRows.events` tuple in :data:`EVENT_COLS` order: ``(stream_id, seq, type,
    schema_version, MessagePack body, ts epoch ms)`` (shard and settlement streams alike)."""
    return (stream_id, e.seq, e.type, e.schema_version, ev.payload_to_msgpack(e.payload), e.ts)


def event_row(event_tuple: Sequence[Any]) -> EventRow:
    """A :data:`BatchRows.events` tuple ``(shard_id, seq, type, schema_version, body, ts)`` as the
    :data:`~persistence.store.EventRow` that ``read_events`` returns."""
    _sid, seq, typ, sv, payload, ts = event_tuple
    return (int(seq), typ, int(ts), int(sv), payload)


def decode_event(row: EventRow) -> ev.Event:
    """An :data:`~persistence.store.EventRow` -> :class:`actors.core.events.Event` (typed payload,
    MessagePack or JSON; rows of older schema versions are upgraded, see
    :func:`actors.core.events.event_from_row`)."""
    seq, typ, ts, sv, payload = row
    return ev.event_from_row(seq, typ, ts, sv, payload)


def stored_payload(body: bytes | None, payload_text: str | None) -> bytes | str:
    """The payload of one ``events`` row as stored: ``body`` (MessagePack bytes) when set, else the
    JSON text of the ``payload`` column (rows stored before migration 0009). Raises ValueError when
    neither is set (the table's CHECK constraint forbids that)."""
    if body is not None:
        return bytes(body)
    if payload_text is None:
        raise ValueError("event row without body or payload")
    return payload_text


def payload_json(stored: bytes | str) -> str:
    """A stored payload (MessagePack bytes or JSON text) as compact JSON text, as the API and the
    Redis stream show it."""
    if isinstance(stored, str):
        return stored
    return ev.msgpack_to_json(stored).decode("utf-8")


def payload_dict(stored: bytes | str) -> dict[str, Any]:
    """A stored payload (MessagePack bytes or JSON text) as plain JSON data (a dict)."""
    data = json.loads(stored) if isinstance(stored, str) else msgspec.msgpack.decode(stored)
    if not isinstance(data, dict):
        raise ValueError("event payload is not an object")
    return data


STORED_PAYLOAD_SQL = "body, CASE WHEN body IS NULL THEN payload::text END AS payload_text"
"""The select-list fragment of an ``events`` query that :func:`stored_payload` reads back
(``body`` and ``payload_text``; the JSON text only for rows stored before migration 0009)."""


def encode_snapshot(state: dict[str, Any], level: int = 1) -> bytes:
    """Engine snapshot dict -> zlib-compressed JSON bytes (what shards store), encoded by msgspec
    (7x the standard library's encoder on a 60,000-order book; the same JSON data)."""
    return zlib.compress(_snapshot_json(state), level)


def decode_snapshot(data: str | bytes) -> dict[str, Any]:
    """Snapshot state as stored (JSON text or zlib-compressed JSON bytes) -> dict. Raises
    ``zlib.error`` / ``msgspec.DecodeError`` on damaged data."""
    raw = zlib.decompress(data) if isinstance(data, bytes | bytearray | memoryview) else data
    state = msgspec.json.decode(raw)
    if not isinstance(state, dict):
        raise msgspec.DecodeError("snapshot is not a JSON object")
    return state


_snapshot_json = msgspec.json.Encoder().encode
