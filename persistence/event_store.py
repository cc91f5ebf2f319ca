"""Event store rows: a shard batch's events as row tuples (MessagePack payloads), stored rows back to
events or JSON, snapshot codecs. The projections (orders, allocations, ...) follow the log
asynchronously (:mod:`persistence.projector`).

Two halves:

- :func:`batch_rows` is pure (no I/O): it turns a batch of :class:`actors.core.events.Event` into
  event row tuples (:class:`BatchRows`). The shard actor runs it: each event's payload is encoded
  once, as MessagePack (:func:`event_tuple`), into the ``events.body`` ``bytea`` column
  (docs/contracts.md, "Storage format").
- :class:`persistence.pg_store.PostgresEventStore` (the :class:`persistence.store.EventStore`
  protocol on PostgreSQL) owns nothing but an asyncpg pool and writes :class:`BatchRows` with
  binary ``COPY`` (``method="copy"``, the default; measured faster, see ``bench/shard.py``) or
  ``executemany``. Fencing: the batch's first seq must follow the shard's committed max seq and the
  primary key ``(shard_id, seq)`` rejects a concurrent writer of the same seq; either way
  :class:`~persistence.store.SeqConflict` is raised and nothing is written.
- :func:`event_row` / :func:`decode_event`: the one place event rows are turned back into events;
  a stored payload is MessagePack ``bytes`` (``body``) or, for rows stored before migration 0010,
  JSON ``str`` (``payload``): :func:`stored_payload` picks it from a row, :func:`payload_json` /
  :func:`payload_dict` give the JSON form of either to readers that serve JSON.

Units: quantities kg (int), prices paise/kg (int), ``ts`` epoch ms.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.core import events as ev
from persistence.store import EventRow

EVENT_COLS = ("shard_id", "seq", "type", "schema_version", "body", "ts")
"""Columns of a :attr:`BatchRows.events` tuple; ``body``: the payload as MessagePack bytes."""


@dataclass(slots=True)
class BatchRows:
    """Event row tuples of one shard batch, in the column order of :data:`EVENT_COLS`; ``last_seq``
    is the highest event seq of the batch (0 when empty)."""

    shard_id: str
    events: list[tuple[Any, ...]] = field(default_factory=list)
    last_seq: int = 0


def batch_rows(shard_id: str, events: Sequence[ev.Event]) -> BatchRows:
    """Rows for one batch: every event (the only synchronous write; the projections follow the log,
    :mod:`persistence.projector`). Pure."""
    rows = BatchRows(shard_id)
    for e in events:
        rows.events.append(event_tuple(shard_id, e))
    rows.last_seq = events[-1].seq if events else 0
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
    JSON text of the ``payload`` column (rows stored before migration 0010). Raises ValueError when
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
(``body`` and ``payload_text``; the JSON text only for rows stored before migration 0010)."""


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
