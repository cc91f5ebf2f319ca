"""The projections on PostgreSQL: write a page of :class:`persistence.projections.ProjectionRows`
with its checkpoint, read the projector's position and lag, wait for a position, look up the
results of past place commands.

- :func:`write_page`: COPY into per-connection staging tables, then upserts keyed by ids (``orders``
  by order_id, ``allocations``/``proposals``/``reservations`` by their ids, ``client_orders`` by
  (party_id, client_order_id)), status changes, and the checkpoint ``projector_checkpoints(shard_id,
  seq)`` moved from ``expect_seq`` to the page's last seq, all in the caller's transaction. A
  checkpoint that is no longer ``expect_seq`` (another projector, a rebuild) raises
  :class:`CheckpointMoved` and the transaction is rolled back, so a page is applied once.
- :func:`positions`: per shard of the ``shards`` table its projector seq, committed head seq and the
  age of the oldest event not yet projected (``events.recorded_at``): the lag in events and seconds.
- :func:`wait_projected`: poll until every given shard's checkpoint reaches a seq (read-your-writes).
- :func:`place_results`: ``client_orders`` rows for (party_id, client_order_id) keys (bounded
  idempotency: the shard asks when it has forgotten a key).

Units: seqs per shard; lag seconds; ``ts`` epoch ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from persistence.projections import (
    ALLOCATION_COLS,
    CLIENT_ORDER_COLS,
    ORDER_COLS,
    PROPOSAL_COLS,
    RESERVATION_COLS,
    ProjectionRows,
)

if TYPE_CHECKING:
    import asyncpg

PROJECTED_TABLES = ("orders", "allocations", "proposals", "reservations", "client_orders")
"""The tables the projector owns (``tradedesk projections rebuild`` empties and refills them)."""

_TABLES = (
    ("orders", ORDER_COLS, ("order_id",)),
    ("allocations", ALLOCATION_COLS, ("allocation_id",)),
    ("proposals", PROPOSAL_COLS, ("proposal_id",)),
    ("reservations", RESERVATION_COLS, ("reservation_id",)),
    ("client_orders", CLIENT_ORDER_COLS, ("party_id", "client_order_id")),
)
LOCK_NS = 7_301_995  # advisory lock namespace: (LOCK_NS, hashtext(shard_id)) = one shard's projections


def _upsert_sql(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM pj_{table} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    )


_UPSERTS = {t: _upsert_sql(t, cols, key) for t, cols, key in _TABLES}
_STAGES = [
    f"CREATE TEMP TABLE IF NOT EXISTS pj_{t} (LIKE {t}) ON COMMIT DELETE ROWS" for t, _c, _k in _TABLES
]
_PROPOSAL_STATUS = (
    "UPDATE proposals p SET status = s.st FROM unnest($1::text[], $2::text[]) AS s(id, st) "
    "WHERE p.proposal_id = s.id"
)
_RESERVATION_STATUS = (
    "UPDATE reservations r SET status = s.st, release_reason = s.why "
    "FROM unnest($1::text[], $2::text[], $3::text[]) AS s(id, st, why) WHERE r.reservation_id = s.id"
)
_MOVE_CHECKPOINT = "UPDATE projector_checkpoints SET seq = $2, updated_at = now() WHERE shard_id = $1"
POSITIONS_SQL = """
SELECT s.shard_id, s.region, s.commodity, coalesce(c.seq, 0) AS projector_seq, h.head,
       CASE WHEN h.head > coalesce(c.seq, 0) THEN extract(epoch FROM now() - (
           SELECT e.recorded_at FROM events e WHERE e.shard_id = s.shard_id AND e.seq = coalesce(c.seq, 0) + 1
       )) ELSE 0 END AS lag_s
FROM shards s
LEFT JOIN projector_checkpoints c ON c.shard_id = s.shard_id
CROSS JOIN LATERAL (SELECT coalesce(max(e.seq), 0) AS head FROM events e WHERE e.shard_id = s.shard_id) h
ORDER BY s.shard_id
"""


class CheckpointMoved(RuntimeError):
    """The shard's checkpoint is not where this projector left it (another projector or a
    rebuild moved it): nothing of the page was written; reload from the checkpoint."""


async def init_connection(conn: asyncpg.Connection) -> None:
    """asyncpg pool ``init`` hook: the per-connection staging tables of :func:`write_page`."""
    for sql in _STAGES:
        await conn.execute(sql)


async def lock_shard(conn: asyncpg.Connection, shard_id: str, wait: bool = False) -> bool:
    """Take the shard's projection lock for the current transaction; False when another
    transaction holds it and ``wait`` is False."""
    fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = await conn.fetchval(f"SELECT {fn}($1, hashtext($2))::text", LOCK_NS, shard_id)
    return wait or got == "true"


async def checkpoint(conn: asyncpg.Connection, shard_id: str, for_update: bool = False) -> int:
    """The shard's projector checkpoint (0 when none), its row created if missing."""
    await conn.execute(
        "INSERT INTO projector_checkpoints (shard_id, seq) VALUES ($1, 0) ON CONFLICT DO NOTHING", shard_id
    )
    lock = " FOR UPDATE" if for_update else ""
    return int(
        await conn.fetchval(f"SELECT seq FROM projector_checkpoints WHERE shard_id = $1{lock}", shard_id)
    )


async def write_page(conn: asyncpg.Connection, rows: ProjectionRows, expect_seq: int) -> None:
    """Write one page's rows and move the checkpoint ``expect_seq`` -> ``rows.last_seq`` (inside the
    caller's transaction). Raises :class:`CheckpointMoved` when the checkpoint is not ``expect_seq``."""
    got = await checkpoint(conn, rows.shard_id, for_update=True)
    if got != expect_seq:
        raise CheckpointMoved(f"{rows.shard_id}: checkpoint is {got}, expected {expect_seq}")
    for (table, cols, _key), recs in zip(
        _TABLES,
        (rows.orders, rows.allocations, rows.proposals, rows.reservations, rows.client_orders),
        strict=True,
    ):
        if recs:
            await conn.copy_records_to_table(f"pj_{table}", records=recs, columns=cols)
            await conn.execute(_UPSERTS[table])
            await conn.execute(f"TRUNCATE pj_{table}")  # a rebuild writes many pages in one transaction
    if rows.proposal_status:
        ps = rows.proposal_status
        await conn.execute(_PROPOSAL_STATUS, list(ps), list(ps.values()))
    if rows.reservation_status:
        rs = rows.reservation_status
        await conn.execute(
            _RESERVATION_STATUS, list(rs), [v[0] for v in rs.values()], [v[1] for v in rs.values()]
        )
    await conn.execute(_MOVE_CHECKPOINT, rows.shard_id, rows.last_seq)


async def clear_shard(conn: asyncpg.Connection, shard_id: str) -> None:
    """Delete every projected row of ``shard_id`` and set its checkpoint to 0 (in the caller's
    transaction; a rebuild then projects the whole log)."""
    for table in PROJECTED_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE shard_id = $1", shard_id)
    await checkpoint(conn, shard_id)
    await conn.execute(
        "UPDATE projector_checkpoints SET seq = 0, updated_at = now() WHERE shard_id = $1", shard_id
    )


async def positions(pool: Any) -> dict[str, dict[str, Any]]:
    """``{shard_id: {"region", "commodity", "projector_seq", "head" (committed max seq),
    "projector_lag_events", "projector_lag_s" (age of the oldest unprojected event, s)}}``."""
    recs = await pool.fetch(POSITIONS_SQL)
    out: dict[str, dict[str, Any]] = {}
    for r in recs:
        seq, head = int(r["projector_seq"]), int(r["head"])
        out[r["shard_id"]] = {
            "region": r["region"],
            "commodity": r["commodity"],
            "projector_seq": seq,
            "head": head,
            "projector_lag_events": max(0, head - seq),
            "projector_lag_s": round(max(0.0, float(r["lag_s"] or 0)), 3),
        }
    return out


async def checkpoints(pool: Any, shard_ids: Iterable[str]) -> dict[str, int]:
    """``{shard_id: projector seq}`` of the given shards (missing ones are 0)."""
    ids = list(shard_ids)
    recs = await pool.fetch(
        "SELECT shard_id, seq FROM projector_checkpoints WHERE shard_id = ANY($1::text[])", ids
    )
    got = {r["shard_id"]: int(r["seq"]) for r in recs}
    return {s: got.get(s, 0) for s in ids}


async def wait_projected(
    pool: Any, targets: dict[str, int], timeout_s: float = 2.0, poll_s: float = 0.01
) -> dict[str, int]:
    """Wait until every shard's checkpoint reaches its target seq (``targets``: {shard_id: seq}) or
    ``timeout_s`` seconds pass; return the shards still behind, ``{shard_id: checkpoint}`` (empty =
    every target reached)."""
    deadline = time.monotonic() + timeout_s
    while True:
        cps = await checkpoints(pool, targets)
        behind = {s: c for s, c in cps.items() if c < targets[s]}
        if not behind or time.monotonic() >= deadline:
            return behind
        targets = {s: targets[s] for s in behind}
        await asyncio.sleep(poll_s)


async def place_results(pool: Any, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(party_id, client_order_id): result dict}`` of the past place commands among ``keys`` (one
    query on the unique index of ``client_orders``)."""
    if not keys:
        return {}
    recs = await pool.fetch(
        "SELECT c.party_id, c.client_order_id, c.result::text AS result FROM client_orders c "
        "JOIN unnest($1::text[], $2::text[]) AS k(p, o) ON c.party_id = k.p AND c.client_order_id = k.o",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["party_id"], r["client_order_id"]): json.loads(r["result"]) for r in recs}
