"""Projection rows from a shard's committed events: pure (no I/O), the one place the read models
``orders``, ``allocations``, ``proposals``, ``reservations`` and ``client_orders`` are derived.

The projector (:mod:`persistence.projector`) feeds a page of typed events through a
:class:`actors.core.engine.ShardEngine` (the core's projector is the one definition of order state)
with :func:`project_page`, which applies each event and returns the rows for that page
(:class:`ProjectionRows`). A touched order's document is taken right after the event that changed it
when that event can close the order, so a closed order leaves the engine's memory (retention
window) only after its last state was taken. The same code runs for a live projector and a
``tradedesk projections rebuild``, so both build the same rows.

Units: quantities kg (int), prices paise/kg (int), ``ts`` epoch ms; ``seq`` per shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.core import events as ev

_ALLOCATING = frozenset({ev.ALLOCATED, ev.CONFIRMED})
_CLOSING = frozenset({ev.ALLOCATED, ev.CONFIRMED, ev.CANCELLED, ev.AMENDED, ev.EXPIRED})
_json = msgspec.json.Encoder()

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
CLIENT_ORDER_COLS = ("party_id", "client_order_id", "order_id", "shard_id", "seq", "status", "result")
"""``client_orders``: the result of every place command (ACCEPTED or REJECTED), keyed by
(party_id, client_order_id): what an idempotent retry answers once the shard forgot the order."""


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (dicts, lists, payload Structs)."""
    return _json.encode(value).decode("utf-8")


@dataclass(slots=True)
class ProjectionRows:
    """Rows of one page of a shard's events, in the column order of the ``*_COLS`` constants.

    ``proposal_status``: ``{proposal_id: status}``; ``reservation_status``: ``{reservation_id:
    (status, release_reason)}``, the last change per id in the page (applied after the inserts).
    ``last_seq``: the highest seq of the page (0 when empty)."""

    shard_id: str
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    allocations: list[tuple[Any, ...]] = field(default_factory=list)
    proposals: list[tuple[Any, ...]] = field(default_factory=list)
    reservations: list[tuple[Any, ...]] = field(default_factory=list)
    client_orders: list[tuple[Any, ...]] = field(default_factory=list)
    proposal_status: dict[str, str] = field(default_factory=dict)
    reservation_status: dict[str, tuple[str, str | None]] = field(default_factory=dict)
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
    """One ``orders`` row from an order dict (:meth:`actors.core.orders.Order.to_dict`); ``last_seq``:
    the seq of the last event that changed the order."""
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
        dumps(doc),
    )


def _place_key(engine: Any, e: ev.Event, accepted: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(party_id, client_order_id) of the place command whose result ``e`` changes, or None;
    ``accepted``: keys of the orders accepted earlier in the page, by order id (filled here)."""
    p = e.payload
    if e.type == ev.ORDER_ACCEPTED:
        key = (p.order.party_id, p.order.client_order_id)
        accepted[p.order.order_id] = key
        return key
    if e.type == ev.ORDER_REJECTED:
        if p.party_id is None or p.client_order_id is None:
            return None
        return (p.party_id, p.client_order_id)
    if e.type in (ev.ALLOCATED, ev.PROPOSED) and getattr(p, "taker_command", None) == "place":
        if p.taker_order_id in accepted:
            return accepted[p.taker_order_id]
        taker = engine.get_order(p.taker_order_id)
        return None if taker is None else (taker["party_id"], taker["client_order_id"])
    return None


def project_page(engine: Any, events: Sequence[ev.Event]) -> ProjectionRows:
    """Apply ``events`` (consecutive seqs after ``engine.seq``) to ``engine`` and return their rows.

    ``engine``: a :class:`actors.core.engine.ShardEngine` at the seq before the page. Raises
    ``ValueError`` when a seq does not follow the engine's (a gap: the caller reloads)."""
    sid = engine.shard_id
    rows = ProjectionRows(sid)
    docs: dict[str, dict[str, Any] | None] = {}
    touched: dict[str, int] = {}  # order id -> seq of the last event that changed it
    places: dict[tuple[str, str], int] = {}
    accepted: dict[str, tuple[str, str]] = {}
    results = engine.results
    taken: dict[tuple[str, str], dict[str, Any] | None] = {}
    for e in events:
        engine.apply(e)
        t, p = e.type, e.payload
        ids = order_ids_of(e)
        for oid in ids:
            touched[oid] = e.seq
        if t in _CLOSING:  # may close an order: take its state before it can leave memory
            for oid in ids:
                docs[oid] = engine.get_order(oid)
        else:
            for oid in ids:
                docs.setdefault(oid, None)
        key = _place_key(engine, e, accepted)
        if key is not None:
            places[key] = e.seq
            taken[key] = results.get(key)  # the result may leave memory later in the page
        if t in _ALLOCATING:
            _allocation(rows, e)
        elif t == ev.PROPOSED:
            rows.proposals.append(
                (
                    p.proposal_id,
                    sid,
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
            rows.proposal_status[p.proposal_id] = "REJECTED"
        elif t == ev.RESERVED:
            rows.reservations.append(
                (
                    p.reservation_id,
                    p.proposal_id,
                    sid,
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
                rows.proposal_status[p.proposal_id] = "ACCEPTED"
        elif t == ev.RELEASED:
            rows.reservation_status[p.reservation_id] = ("RELEASED", p.reason)
    last = events[-1].seq if events else 0
    rows.last_seq = last
    for oid, doc in docs.items():
        now = engine.get_order(oid)
        doc = now if now is not None else doc
        if doc is not None:
            rows.orders.append(order_row(sid, doc, touched[oid]))
    for key, seq in places.items():
        res = results.get(key) or taken.get(key)
        if res is not None:
            rows.client_orders.append(
                (key[0], key[1], res.get("order_id"), sid, seq, str(res.get("status")), dumps(res))
            )
    return rows


def _allocation(rows: ProjectionRows, e: ev.Event) -> None:
    p = e.payload
    risk = p.risk
    mv = risk.get("model_versions") if isinstance(risk, dict) else None
    rows.allocations.append(
        (
            p.allocation_id,
            rows.shard_id,
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
            dumps(p.breakdown),
            dumps(risk),
            dumps(mv or {}),
            p.reservation_id,
        )
    )
    if p.reservation_id or e.type == ev.CONFIRMED:
        rows.reservation_status[p.reservation_id] = ("CONFIRMED", None)
