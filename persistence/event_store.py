"""Event store on PostgreSQL: append a shard's event batch in one transaction, read events back
for recovery, save and load snapshots. The projections (orders, allocations, ...) follow the log
asynchronously (:mod:`persistence.projector`).

Two halves:

- :func:`batch_rows` is pure (no I/O): it turns a batch of :class:`actors.core.events.Event` into
  event row tuples (:class:`BatchRows`). The shard actor runs it, so the encoding happens in the
  shard's process and the persistence actor only moves rows.
- :class:`persistence.pg_store.PostgresEventStore` (the :class:`persistence.store.EventStore`
  protocol on PostgreSQL) owns nothing but an asyncpg pool and writes :class:`BatchRows` with
  binary ``COPY`` (``method="copy"``, the default; measured faster, see ``bench/shard.py``) or
  ``executemany``. Fencing: the batch's first seq must follow the shard's committed max seq and the
  primary key ``(shard_id, seq)`` rejects a concurrent writer of the same seq; either way
  :class:`~persistence.store.SeqConflict` is raised and nothing is written.
- :func:`event_row` / :func:`decode_event`: the one place event rows are turned back into events.

Units: quantities kg (int), prices paise/kg (int), ``ts`` epoch ms.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.core import events as ev
from persistence.store import EventRow

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

EVENT_COLS = ("shard_id", "seq", "type", "schema_version", "payload", "ts")


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
        rows.events.append((shard_id, e.seq, e.type, e.schema_version, ev.payload_to_json(e.payload), e.ts))
    rows.last_seq = events[-1].seq if events else 0
    return rows


def event_row(event_tuple: Sequence[Any]) -> EventRow:
    """A :data:`BatchRows.events` tuple ``(shard_id, seq, type, schema_version, payload, ts)`` as the
    :data:`~persistence.store.EventRow` that ``read_events`` returns."""
    _sid, seq, typ, sv, payload, ts = event_tuple
    return (int(seq), typ, int(ts), int(sv), payload)


def decode_event(row: EventRow) -> ev.Event:
    """An :data:`~persistence.store.EventRow` -> :class:`actors.core.events.Event` (typed payload;
    rows of older schema versions are upgraded, see :func:`actors.core.events.event_from_row`)."""
    seq, typ, ts, sv, payload = row
    return ev.event_from_row(seq, typ, ts, sv, payload)


def encode_snapshot(state: dict[str, Any], level: int = 1) -> bytes:
    """Engine snapshot dict -> zlib-compressed JSON bytes (what shards store)."""
    return zlib.compress(_dumps(state).encode("utf-8"), level)


def decode_snapshot(data: str | bytes) -> dict[str, Any]:
    """Snapshot state as stored (JSON text or zlib-compressed JSON bytes) -> dict."""
    if isinstance(data, bytes | bytearray | memoryview):
        return json.loads(zlib.decompress(data))
    return json.loads(data)
