"""The settlement host's store on PostgreSQL: a batch of settlement events, its ledger transfers and
balances and the read models in one transaction; events read back for recovery; the shards'
committed allocations read for tailing.

Events go to the ``events`` table under stream ``settlement`` with the event store's fencing
(:func:`persistence.store.check_fence`: the batch must start at the committed max seq + 1, and the
primary key ``(shard_id, seq)`` stops a concurrent writer) and are read back through the
:class:`persistence.store.EventStore` protocol (:class:`persistence.pg_store.PostgresEventStore`).
Transfers are written with binary COPY; the touched accounts are upserted with their balances
(CHECK constraints enforce the flags); a ``ledger_commits`` row per batch fires the deferred
constraint trigger that refuses the COMMIT unless debits == credits. Errors are classified as in
:mod:`persistence.pg_store` (:class:`~persistence.store.CommitFailed`,
:class:`~persistence.store.SeqConflict`, :class:`~persistence.store.CommitOutcomeUnknown`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors.core.ids import SETTLEMENT_STREAM
from persistence.event_store import EVENT_COLS, STORED_PAYLOAD_SQL, stored_payload
from persistence.pg_store import PostgresEventStore, fenced_commit
from persistence.settlement_rows import (
    ACCOUNT_COLS,
    CONTRACT_COLS,
    DELIVERY_COLS,
    INVOICE_COLS,
    ML_SETTLEMENT_COLS,
    PAYMENT_COLS,
    TRANSFER_COLS,
    SettlementRows,
)
from persistence.store import EventRow

if TYPE_CHECKING:
    import asyncpg


def _upsert(table: str, cols: Sequence[str], key: Sequence[str]) -> str:
    vals = ", ".join(f"${i + 1}" for i in range(len(cols)))
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in key)
    insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({vals})"
    return f"{insert} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


UPSERT_ACCOUNTS = _upsert("ledger_accounts", ACCOUNT_COLS, ("account_id",))
UPSERT_CONTRACTS = _upsert("contracts", CONTRACT_COLS, ("contract_id",))
UPSERT_INVOICES = _upsert("invoices", INVOICE_COLS, ("invoice_id",))
UPSERT_ML = _upsert("ml_settlements", ML_SETTLEMENT_COLS, ("invoice_id",))
INSERT_DELIVERIES = _upsert("deliveries", DELIVERY_COLS, ("delivery_id",))
INSERT_PAYMENTS = _upsert("payments", PAYMENT_COLS, ("buyer_id", "payment_ref"))
_STAGE_FROM = 32  # more touched accounts than this: COPY into a staging table, then one upsert
_ACCOUNTS_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ledger_accounts_stage (LIKE ledger_accounts) ON COMMIT DELETE ROWS"
)
_UPSERT_ACCOUNTS_FROM_STAGE = (
    f"INSERT INTO ledger_accounts ({', '.join(ACCOUNT_COLS)}) SELECT {', '.join(ACCOUNT_COLS)}"
    " FROM ledger_accounts_stage ON CONFLICT (account_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ACCOUNT_COLS if c != "account_id")
)
TAIL_SQL = (
    f"SELECT seq, type, ts, schema_version, {STORED_PAYLOAD_SQL} FROM events WHERE shard_id = $1"
    " AND seq > $2 AND type IN ('ALLOCATED', 'CONFIRMED')"
    # only what the projector has passed: the contract reads both orders from the orders projection
    " AND seq <= (SELECT coalesce(max(c.seq), 0) FROM projector_checkpoints c WHERE c.shard_id = $1)"
    " ORDER BY seq LIMIT $3"
)


async def write_ledger(
    conn: asyncpg.Connection,
    transfers: list[tuple[Any, ...]],
    accounts: list[tuple[Any, ...]],
    last_seq: int,
    ts: int,
) -> None:
    """Inside the caller's transaction: COPY ``transfers``, upsert ``accounts`` (balances after the
    batch), insert the ``ledger_commits`` row whose deferred trigger checks the balance at COMMIT."""
    if transfers:
        await conn.copy_records_to_table("ledger_transfers", records=transfers, columns=TRANSFER_COLS)
    if len(accounts) > _STAGE_FROM:
        await conn.execute(_ACCOUNTS_STAGE)
        await conn.copy_records_to_table("ledger_accounts_stage", records=accounts, columns=ACCOUNT_COLS)
        await conn.execute(_UPSERT_ACCOUNTS_FROM_STAGE)
    elif accounts:
        await conn.executemany(UPSERT_ACCOUNTS, accounts)
    await conn.execute(
        "INSERT INTO ledger_commits (seq, transfers, ts) VALUES ($1, $2, $3)", last_seq, len(transfers), ts
    )


class PostgresSettlementStore:
    """Store of the settlement host over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.events = PostgresEventStore(pool)

    async def append(self, rows: SettlementRows) -> int:
        """Write one batch atomically; return its last seq. Raises what
        :func:`persistence.pg_store.fenced_commit` raises: ``SeqConflict``, ``CommitFailed`` (nothing
        written) or ``CommitOutcomeUnknown``."""
        if not rows.events:
            return 0

        async def write(conn: asyncpg.Connection) -> None:
            await conn.copy_records_to_table("events", records=rows.events, columns=EVENT_COLS)
            await write_ledger(conn, rows.transfers, rows.accounts, rows.last_seq, rows.ts)
            for sql, data in (
                (UPSERT_CONTRACTS, rows.contracts),
                (INSERT_DELIVERIES, rows.deliveries),
                (UPSERT_INVOICES, rows.invoices),
                (INSERT_PAYMENTS, rows.payments),
                (UPSERT_ML, rows.ml_settlements),
            ):
                if data:
                    await conn.executemany(sql, data)

        await fenced_commit(self.pool, SETTLEMENT_STREAM, [e[1] for e in rows.events], write)
        return rows.last_seq

    async def read_events(self, after_seq: int, limit: int = 50_000) -> list[EventRow]:
        """Settlement events with seq > ``after_seq``, oldest first."""
        return await self.events.read_events(SETTLEMENT_STREAM, after_seq, limit)

    async def max_seq(self) -> int:
        """Highest committed settlement seq (0 when none)."""
        return await self.events.max_seq(SETTLEMENT_STREAM)

    async def shard_ids(self) -> list[str]:
        """Every registered shard id."""
        return [r["shard_id"] for r in await self.events.list_shards()]

    async def allocations_after(self, shard_id: str, after_seq: int, limit: int = 5_000) -> list[EventRow]:
        """Committed ALLOCATED/CONFIRMED events of ``shard_id`` with seq > ``after_seq``."""
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(TAIL_SQL, shard_id, after_seq, limit)
        return [(int(r[0]), r[1], int(r[2]), int(r[3]), stored_payload(r[4], r[5])) for r in recs]

    async def order_docs(self, order_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{order_id: order dict}`` from the orders projection (the tail reads only allocations the
        projector has passed, :data:`TAIL_SQL`)."""
        if not order_ids:
            return {}
        async with self.pool.acquire() as conn:
            recs = await conn.fetch(
                "SELECT order_id, doc::text FROM orders WHERE order_id = ANY($1::text[])", list(order_ids)
            )
        return {r[0]: json.loads(r[1]) for r in recs}
