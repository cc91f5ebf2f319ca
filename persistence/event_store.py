"""Event store on PostgreSQL: append a shard's event batch and its projections in one transaction,
read events back for recovery, save and load snapshots.

Two halves:

- :func:`batch_rows` is pure (no I/O): it turns a batch of :class:`actors.core.events.Event` plus the current
  state of the orders the batch touched into row tuples for each table (:class:`BatchRows`). The shard
  actor runs it, so the JSON encoding happens in the shard's process and the persistence actor only
  moves rows.
- :class:`EventStore` owns nothing but an asyncpg pool and writes :class:`BatchRows` with either binary
  ``COPY`` (``method="copy"``, the default; measured faster, see ``bench/shard.py``) or ``executemany``
  (``method="executemany"``). Events go into ``events`` whose primary key ``(shard_id, seq)`` rejects a
  second writer of the same sequence number: the whole transaction then fails and nothing is written.

Units: quantities kg (int), prices paise/kg (int), ``ts`` epoch ms.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.core import events as ev

CONFIRMED = ev.CONFIRMED
_ALLOCATING = frozenset({ev.ALLOCATED, CONFIRMED})

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

EVENT_COLS = ("shard_id", "seq", "type", "schema_version", "payload", "ts")
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
        rows.events.append((shard_id, e.seq, e.type, e.schema_version, ev.payload_to_json(p), e.ts))
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
                    rows.events[-1][4],
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


_ORDER_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_COLS if c not in ("order_id", "shard_id"))
_UPSERT_ORDERS_FROM_STAGE = (
    f"INSERT INTO orders ({', '.join(ORDER_COLS)}) SELECT {', '.join(ORDER_COLS)} FROM orders_stage "
    f"ON CONFLICT (order_id) DO UPDATE SET {_ORDER_UPDATE}"
)
_UPSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(ORDER_COLS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(ORDER_COLS)))}) "
    f"ON CONFLICT (order_id) DO UPDATE SET {_ORDER_UPDATE}"
)


def _insert_sql(table: str, cols: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})"
    )


STAGE_SQL = "CREATE TEMP TABLE IF NOT EXISTS orders_stage (LIKE orders) ON COMMIT DELETE ROWS"


async def init_connection(conn: Any) -> None:
    """asyncpg pool ``init`` hook: the per-connection staging table used by COPY upserts."""
    await conn.execute(STAGE_SQL)


class EventStore:
    """Writes and reads the event store through an asyncpg pool (``pool`` created with
    ``init=init_connection``). ``method``: ``copy`` or ``executemany`` for the append path."""

    def __init__(self, pool: Any, method: str = "copy"):
        if method not in ("copy", "executemany"):
            raise ValueError(f"unknown append method {method!r}")
        self.pool = pool
        self.method = method

    async def append(self, rows: BatchRows) -> int:
        """Append one batch and its projections in a single transaction; return its last seq.
        Raises ``asyncpg.UniqueViolationError`` when any seq already exists (stale writer): then
        nothing of the batch is written."""
        if not rows.events:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            if self.method == "copy":
                await self._append_copy(conn, rows)
            else:
                await self._append_executemany(conn, rows)
            await self._status_updates(conn, rows)
        return rows.last_seq

    async def _append_copy(self, conn: Any, rows: BatchRows) -> None:
        await conn.copy_records_to_table("events", records=rows.events, columns=EVENT_COLS)
        if rows.orders:
            await conn.copy_records_to_table("orders_stage", records=rows.orders, columns=ORDER_COLS)
            await conn.execute(_UPSERT_ORDERS_FROM_STAGE)
        if rows.allocations:
            await conn.copy_records_to_table("allocations", records=rows.allocations, columns=ALLOCATION_COLS)
        if rows.proposals:
            await conn.copy_records_to_table("proposals", records=rows.proposals, columns=PROPOSAL_COLS)
        if rows.reservations:
            await conn.copy_records_to_table(
                "reservations", records=rows.reservations, columns=RESERVATION_COLS
            )

    async def _append_executemany(self, conn: Any, rows: BatchRows) -> None:
        await conn.executemany(_insert_sql("events", EVENT_COLS), rows.events)
        if rows.orders:
            await conn.executemany(_UPSERT_ORDER, rows.orders)
        if rows.allocations:
            await conn.executemany(_insert_sql("allocations", ALLOCATION_COLS), rows.allocations)
        if rows.proposals:
            await conn.executemany(_insert_sql("proposals", PROPOSAL_COLS), rows.proposals)
        if rows.reservations:
            await conn.executemany(_insert_sql("reservations", RESERVATION_COLS), rows.reservations)

    async def _status_updates(self, conn: Any, rows: BatchRows) -> None:
        if rows.proposal_status:
            await conn.executemany(
                "UPDATE proposals SET status = $2 WHERE proposal_id = $1", rows.proposal_status
            )
        if rows.reservation_status:
            await conn.executemany(
                "UPDATE reservations SET status = $2, release_reason = $3 WHERE reservation_id = $1",
                rows.reservation_status,
            )

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[tuple[Any, ...]]:
        """Events of ``shard_id`` with ``seq > after_seq``, oldest first, at most ``limit``, as
        ``(seq, type, ts, schema_version, payload_json_text)`` tuples (decode a row with
        :func:`actors.core.events.event_from_row`; rows of older schema versions are upgraded)."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(
                "SELECT seq, type, ts, schema_version, payload::text FROM events "
                "WHERE shard_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                shard_id,
                after_seq,
                limit,
            )
        return [tuple(r) for r in recs]

    async def max_seq(self, shard_id: str) -> int:
        """Highest committed seq of a shard (0 when none)."""
        async with self.pool.acquire() as conn:
            v = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events WHERE shard_id = $1", shard_id)
        return int(v)

    async def save_snapshot(self, shard_id: str, seq: int, state: str | bytes) -> None:
        """Store the engine state after event ``seq``: JSON text, or zlib-compressed JSON bytes
        (:func:`encode_snapshot`). Re-saving the same seq is a no-op."""
        async with self.pool.acquire() as conn:
            if isinstance(state, bytes):
                await conn.execute(
                    "INSERT INTO snapshots (shard_id, seq, blob, codec) VALUES ($1, $2, $3, 'zlib-json') "
                    "ON CONFLICT DO NOTHING",
                    shard_id,
                    seq,
                    state,
                )
            else:
                await conn.execute(
                    "INSERT INTO snapshots (shard_id, seq, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    shard_id,
                    seq,
                    state,
                )

    async def latest_snapshot(self, shard_id: str) -> tuple[int, str | bytes] | None:
        """``(seq, state)`` of the newest snapshot of a shard, or None; ``state`` is JSON text or
        zlib-compressed JSON bytes (decode either with :func:`decode_snapshot`)."""
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "SELECT seq, state::text, blob FROM snapshots WHERE shard_id = $1 ORDER BY seq DESC LIMIT 1",
                shard_id,
            )
        if r is None:
            return None
        return (int(r[0]), bytes(r[2]) if r[2] is not None else r[1])


def encode_snapshot(state: dict[str, Any], level: int = 1) -> bytes:
    """Engine snapshot dict -> zlib-compressed JSON bytes (what shards store)."""
    return zlib.compress(_dumps(state).encode("utf-8"), level)


def decode_snapshot(data: str | bytes) -> dict[str, Any]:
    """Snapshot state as stored (JSON text or zlib-compressed JSON bytes) -> dict."""
    if isinstance(data, bytes | bytearray | memoryview):
        return json.loads(zlib.decompress(data))  # type: ignore[no-any-return]
    return json.loads(data)  # type: ignore[no-any-return]
