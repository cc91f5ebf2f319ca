"""The :class:`persistence.store.EventStore` on PostgreSQL (asyncpg): a shard batch's events in one
transaction (the projections follow the log, :mod:`persistence.projector`), events read back for
recovery, snapshots and the shards registry.

Rows come from :func:`persistence.event_store.batch_rows`; this module only moves them. Fencing is on
``(shard_id, seq)``: the batch's first seq must follow the committed max seq (checked inside the
transaction) and the primary key rejects a concurrent writer of the same seq. Errors are classified
as :class:`~persistence.store.SeqConflict` / :class:`~persistence.store.CommitFailed` (nothing
written) or :class:`~persistence.store.CommitOutcomeUnknown` (the connection was lost while COMMIT
was in flight).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from persistence.event_store import EVENT_COLS, STORED_PAYLOAD_SQL, BatchRows, stored_payload
from persistence.store import (
    CommitFailed,
    CommitOutcomeUnknown,
    EventRow,
    SeqConflict,
    Snapshot,
    SnapshotPosition,
    check_fence,
)

if TYPE_CHECKING:
    import asyncpg


def _insert_sql(table: str, cols: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})"
    )


_MAX_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM events WHERE shard_id = $1"
_READ_SQL = (
    f"SELECT seq, type, ts, schema_version, {STORED_PAYLOAD_SQL} FROM events "
    "WHERE shard_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
)

_POSITIONS_SQL = """
SELECT s.shard_id, s.region, s.commodity, coalesce(sn.seq, 0), coalesce(h.seq, 0),
       extract(epoch FROM now() - coalesce(sn.created_at, f.recorded_at))::float8
FROM shards s
LEFT JOIN LATERAL (SELECT seq, created_at FROM snapshots
                   WHERE shard_id = s.shard_id ORDER BY seq DESC LIMIT 1) sn ON true
LEFT JOIN LATERAL (SELECT max(seq) AS seq FROM events WHERE shard_id = s.shard_id) h ON true
LEFT JOIN LATERAL (SELECT recorded_at FROM events
                   WHERE shard_id = s.shard_id ORDER BY seq LIMIT 1) f ON true
ORDER BY s.shard_id
"""
"""Per registered shard: latest snapshot seq, committed head, seconds since that snapshot (else since
the first event). Three primary-key lookups per shard: no scan of the log or of snapshot blobs."""


class PostgresEventStore:
    """The :class:`persistence.store.EventStore` on PostgreSQL through an asyncpg pool.
    ``method``: ``copy`` or ``executemany`` for the append path.
    """

    def __init__(self, pool: asyncpg.Pool, method: str = "copy"):
        if method not in ("copy", "executemany"):
            raise ValueError(f"unknown append method {method!r}")
        self.pool = pool
        self.method = method

    async def append(self, rows: BatchRows) -> int:
        """Append one batch's events in a single transaction; return its last seq.

        Raises :class:`~persistence.store.SeqConflict` when the batch's first seq is not the shard's
        committed seq + 1 or any seq already exists (stale or concurrent writer),
        :class:`~persistence.store.CommitFailed` when the database refused the batch or the
        connection failed before COMMIT was sent (nothing written), and
        :class:`~persistence.store.CommitOutcomeUnknown` when the connection failed or timed out
        while COMMIT was in flight."""
        if not rows.events:
            return 0

        async def write(conn: asyncpg.Connection) -> None:
            if self.method == "copy":
                await self._append_copy(conn, rows)
            else:
                await self._append_executemany(conn, rows)

        await fenced_commit(self.pool, rows.shard_id, [e[1] for e in rows.events], write)
        return rows.last_seq

    async def _append_copy(self, conn: asyncpg.Connection, rows: BatchRows) -> None:
        await conn.copy_records_to_table("events", records=rows.events, columns=EVENT_COLS)

    async def _append_executemany(self, conn: asyncpg.Connection, rows: BatchRows) -> None:
        await conn.executemany(_insert_sql("events", EVENT_COLS), rows.events)

    async def read_events(self, shard_id: str, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """Events of ``shard_id`` with ``seq > after_seq``, oldest first, at most ``limit``, as
        ``(seq, type, ts, schema_version, payload)`` tuples (payload: MessagePack bytes, or JSON
        text for rows stored before migration 0010)."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(_READ_SQL, shard_id, after_seq, limit)
        return [(r[0], r[1], r[2], r[3], stored_payload(r[4], r[5])) for r in recs]

    async def place_results(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Results of past place commands by (party_id, client_order_id), from the ``client_orders``
        projection (:func:`persistence.projection_store.place_results`); missing keys are left out."""
        from persistence.projection_store import place_results

        return await place_results(self.pool, keys)

    async def max_seq(self, shard_id: str) -> int:
        """Highest committed seq of a shard (0 when none)."""
        async with self.pool.acquire() as conn:
            v = await conn.fetchval(_MAX_SEQ_SQL, shard_id)
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

    async def latest_snapshot(self, shard_id: str) -> Snapshot | None:
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

    async def latest_snapshot_seq(self, shard_id: str) -> int:
        """Seq of the newest snapshot of a shard (0 when none), without reading its state."""
        async with self.pool.acquire() as conn:
            v = await conn.fetchval(
                "SELECT coalesce(max(seq), 0) FROM snapshots WHERE shard_id = $1", shard_id
            )
        return int(v)

    async def snapshot_positions(self) -> list[SnapshotPosition]:
        """Per shard of the ``shards`` table: latest snapshot seq, committed head and seconds since that
        snapshot was stored (else since the first event was recorded; None when neither), by shard id
        (see :class:`~persistence.store.SnapshotPosition`)."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(_POSITIONS_SQL)
        return [
            SnapshotPosition(r[0], r[1], r[2], int(r[3]), int(r[4]), None if r[5] is None else float(r[5]))
            for r in recs
        ]

    async def upsert_shard(
        self, shard_id: str, region: str, commodity: str, status: str = "ACTIVE", node_id: str | None = None
    ) -> None:
        """Register a shard in the ``shards`` table or update its status (and node when given)."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO shards (shard_id, region, commodity, status, node_id) VALUES ($1,$2,$3,$4,$5) "
                "ON CONFLICT (shard_id) DO UPDATE SET status = EXCLUDED.status, "
                "node_id = coalesce(EXCLUDED.node_id, shards.node_id), updated_at = now()",
                shard_id,
                region,
                commodity,
                status,
                node_id,
            )

    async def list_shards(self) -> list[dict[str, Any]]:
        """Rows of the ``shards`` table as dicts, by shard id."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(
                "SELECT shard_id, region, commodity, status, node_id FROM shards ORDER BY shard_id"
            )
        return [dict(r) for r in recs]


async def fenced_commit(
    pool: asyncpg.Pool,
    stream_id: str,
    seqs: list[int],
    write: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    """One transaction appending ``seqs`` of ``stream_id``: checks the fence (the first seq is the
    committed seq + 1, :func:`~persistence.store.check_fence`), runs ``write(conn)``, commits.

    Raises :class:`~persistence.store.SeqConflict` (fence or a duplicate (shard_id, seq)),
    :class:`~persistence.store.CommitFailed` (refused, or the connection failed before COMMIT: nothing
    written) and :class:`~persistence.store.CommitOutcomeUnknown` (the connection failed while COMMIT
    was in flight)."""
    import asyncpg

    phase = "write"
    try:
        async with pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                committed = await conn.fetchval(_MAX_SEQ_SQL, stream_id)
                check_fence(stream_id, int(committed), seqs)
                await write(conn)
            except BaseException:
                with contextlib.suppress(Exception):
                    await tr.rollback()
                raise
            phase = "commit"
            await tr.commit()
    except CommitFailed:
        raise
    except asyncpg.UniqueViolationError as exc:
        raise SeqConflict(f"seq conflict in {stream_id}: duplicate seq ({exc})") from exc
    except Exception as exc:
        what = f"{stream_id}: {type(exc).__name__}: {exc}"
        if phase == "commit" and not _server_refused(exc):
            raise CommitOutcomeUnknown(f"commit outcome unknown: {what}") from exc
        raise CommitFailed(f"batch not written: {what}") from exc


def _server_refused(exc: BaseException) -> bool:
    """True when PostgreSQL itself answered with an error (the transaction is then rolled back);
    False for lost connections, timeouts, shutdowns (SQLSTATE classes 08, 57) and client errors."""
    import asyncpg

    code = str(getattr(exc, "sqlstate", "") or "")
    return isinstance(exc, asyncpg.PostgresError) and code[:2] not in ("08", "57")
