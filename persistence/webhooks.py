"""Webhook tables (migration 0008): endpoints and their secrets, the outbox cursor per event stream,
and the delivery rows with their retry state (docs/webhooks.md). Every SQL the webhooks run is here.

Secrets arrive and leave encrypted (``bytes``): this module never sees a secret in clear.
Party scoping: every endpoint read or change takes the caller's ``party_id`` and finds nothing for
another party's endpoint. Times are the database clock (``now()``); intervals are seconds.

The outbox (:meth:`WebhookRepo.fan_out`): per stream, one REPEATABLE READ transaction locks the
stream's cursor row (``FOR UPDATE SKIP LOCKED``: one dispatcher per stream at a time, others skip),
reads the committed events after ``last_seq``, inserts a delivery row per matching endpoint
(:func:`actors.core.webhooks.wants`; ``ON CONFLICT DO NOTHING``) and moves the cursor, all in one
commit. Seqs are gap-free and a stream's batches commit in seq order (``(shard_id, seq)`` fencing),
so an event the cursor has passed is never committed later. Under one snapshot, an endpoint
committed before an event is seen with it: every event committed after an endpoint reaches it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from actors.core.webhooks import WEBHOOK_TYPES, parties_of, wants
from persistence.event_store import STORED_PAYLOAD_SQL, payload_dict, stored_payload

STATUSES = ("pending", "delivered", "dead")

_ENDPOINT_COLS = "endpoint_id, party_id, url, categories, description, created_at"
_DELIVERY_COLS = (
    "delivery_id, endpoint_id, stream_id, seq, event_type, status, attempts, next_attempt_at, "
    "last_status, last_error, created_at, last_attempt_at, delivered_at"
)
_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (endpoint_id, stream_id, seq, event_type) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (endpoint_id, stream_id, seq) DO NOTHING"
)
_REDELIVER = (
    "INSERT INTO webhook_deliveries (endpoint_id, stream_id, seq, event_type) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (endpoint_id, stream_id, seq) DO UPDATE SET status = 'pending', attempts = 0, "
    "next_attempt_at = now(), lease = NULL, last_error = NULL, last_status = NULL, delivered_at = NULL"
)
# every stream of the events table (a loose index scan of its primary key), its head and cursor
_STREAMS = """
WITH RECURSIVE s(id) AS (
    SELECT min(shard_id) FROM events
    UNION ALL
    SELECT (SELECT min(shard_id) FROM events WHERE shard_id > s.id) FROM s WHERE s.id IS NOT NULL
)
SELECT s.id, (SELECT max(seq) FROM events WHERE shard_id = s.id) AS head, coalesce(c.last_seq, 0) AS last
  FROM s LEFT JOIN webhook_cursors c ON c.stream_id = s.id
 WHERE s.id IS NOT NULL
"""
_CLAIM = """
WITH due AS (
    SELECT delivery_id FROM webhook_deliveries
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2), lease = $3
      FROM due WHERE d.delivery_id = due.delivery_id
    RETURNING d.delivery_id, d.endpoint_id, d.stream_id, d.seq, d.attempts
)
SELECT c.delivery_id, c.endpoint_id, c.stream_id, c.seq, c.attempts, e.url,
       ev.type, ev.ts, ev.schema_version, ev.body,
       CASE WHEN ev.body IS NULL THEN ev.payload::text END AS payload_text,
       ARRAY(SELECT s.ciphertext FROM webhook_secrets s
              WHERE s.endpoint_id = c.endpoint_id AND (s.expires_at IS NULL OR s.expires_at > now())
              ORDER BY s.secret_no DESC) AS secrets
  FROM claimed c
  JOIN webhook_endpoints e ON e.endpoint_id = c.endpoint_id
  JOIN events ev ON ev.shard_id = c.stream_id AND ev.seq = c.seq
"""


def _payload(r: Any) -> dict[str, Any]:
    """The payload of an events row read with ``body`` and ``payload_text`` (either codec)."""
    return payload_dict(stored_payload(r["body"], r["payload_text"]))


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a dispatcher holds until ``lease_s`` after its claim: where to send what, signed
    with which (encrypted) secrets, newest first. ``attempts``: tries made before this one."""

    delivery_id: int
    endpoint_id: str
    stream_id: str
    seq: int
    attempts: int
    url: str
    event_type: str
    ts: int
    schema_version: int
    payload: dict[str, Any]
    secrets: tuple[bytes, ...]
    lease: uuid.UUID


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def endpoint_view(r: Any) -> dict[str, Any]:
    """An endpoint row as the API shows it (never a secret)."""
    return {
        "endpoint_id": r["endpoint_id"],
        "party_id": r["party_id"],
        "url": r["url"],
        "categories": list(r["categories"]),
        "description": r["description"],
        "created_at": _iso(r["created_at"]),
    }


def delivery_view(r: Any) -> dict[str, Any]:
    """A delivery row as the API shows it; times ISO 8601."""
    d = {k: r[k] for k in ("delivery_id", "endpoint_id", "stream_id", "seq", "event_type", "status")}
    d.update(attempts=r["attempts"], last_status=r["last_status"], last_error=r["last_error"])
    for k in ("next_attempt_at", "created_at", "last_attempt_at", "delivered_at"):
        d[k] = _iso(r[k])
    if d["status"] != "pending":
        d["next_attempt_at"] = None
    return d


class WebhookRepo:
    """The webhook tables over an asyncpg ``pool``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- endpoints ---------------------------------------------------------------------------------
    async def create(
        self,
        endpoint_id: str,
        party_id: str,
        url: str,
        categories: Sequence[str],
        description: str | None,
        ciphertext: bytes,
    ) -> dict[str, Any]:
        """Insert an endpoint with its first secret (``secret_no`` 1); returns :func:`endpoint_view`."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO webhook_endpoints (endpoint_id, party_id, url, categories, description) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {_ENDPOINT_COLS}",
                endpoint_id,
                party_id,
                url,
                list(categories),
                description,
            )
            await conn.execute(
                "INSERT INTO webhook_secrets (endpoint_id, secret_no, ciphertext) VALUES ($1, 1, $2)",
                endpoint_id,
                ciphertext,
            )
        return endpoint_view(row)

    async def list_for(self, party_id: str) -> list[dict[str, Any]]:
        """The party's endpoints, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints WHERE party_id = $1 "
            "ORDER BY created_at, endpoint_id",
            party_id,
        )
        return [endpoint_view(r) for r in rows]

    async def get(self, endpoint_id: str, party_id: str) -> dict[str, Any] | None:
        """The endpoint when it exists and is ``party_id``'s, else None."""
        row = await self.pool.fetchrow(
            f"SELECT {_ENDPOINT_COLS} FROM webhook_endpoints WHERE endpoint_id = $1 AND party_id = $2",
            endpoint_id,
            party_id,
        )
        return endpoint_view(row) if row is not None else None

    async def delete(self, endpoint_id: str, party_id: str) -> bool:
        """Delete the endpoint, its secrets and its deliveries; False when not found."""
        done = await self.pool.execute(
            "DELETE FROM webhook_endpoints WHERE endpoint_id = $1 AND party_id = $2", endpoint_id, party_id
        )
        return str(done) != "DELETE 0"

    async def rotate(
        self, endpoint_id: str, party_id: str, ciphertext: bytes, grace_s: float
    ) -> dict[str, Any] | None:
        """Add a new current secret; the previous current one keeps signing for ``grace_s`` seconds
        (rotated-out secrets past their grace are dropped). Returns ``{"endpoint_id",
        "previous_expires_at"}`` or None when the endpoint is not the party's."""
        async with self.pool.acquire() as conn, conn.transaction():
            ok = await conn.fetchval(
                "SELECT 1 FROM webhook_endpoints WHERE endpoint_id = $1 AND party_id = $2 FOR UPDATE",
                endpoint_id,
                party_id,
            )
            if ok is None:
                return None
            expires = await conn.fetchval(
                "UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => $2) "
                "WHERE endpoint_id = $1 AND expires_at IS NULL RETURNING expires_at",
                endpoint_id,
                float(grace_s),
            )
            await conn.execute(
                "DELETE FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at <= now()", endpoint_id
            )
            await conn.execute(
                "INSERT INTO webhook_secrets (endpoint_id, secret_no, ciphertext) SELECT $1, "
                "coalesce((SELECT max(secret_no) FROM webhook_secrets WHERE endpoint_id = $1), 0) + 1, $2",
                endpoint_id,
                ciphertext,
            )
        return {"endpoint_id": endpoint_id, "previous_expires_at": _iso(expires)}

    # -- deliveries (API) ----------------------------------------------------------------------------
    async def deliveries(
        self, endpoint_id: str, status: str | None, after_id: int, limit: int
    ) -> list[dict[str, Any]]:
        """Deliveries of an endpoint (``status`` one of :data:`STATUSES` or any), by id after ``after_id``."""
        rows = await self.pool.fetch(
            f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE endpoint_id = $1 "
            "AND ($2::text IS NULL OR status = $2) AND delivery_id > $3 ORDER BY delivery_id LIMIT $4",
            endpoint_id,
            status,
            after_id,
            limit,
        )
        return [delivery_view(r) for r in rows]

    async def redeliver(
        self, endpoint: dict[str, Any], stream_id: str, from_seq: int, limit: int
    ) -> dict[str, Any]:
        """Queue again every event of ``stream_id`` with seq >= ``from_seq`` that the endpoint
        receives (at most ``limit`` events scanned): new rows pending, existing ones reset to pending
        with 0 attempts. Returns ``{"queued", "through_seq", "more"}`` (``through_seq``: the last seq
        scanned; ``more``: call again from ``through_seq + 1``)."""
        rows = await self.pool.fetch(
            f"SELECT seq, type, {STORED_PAYLOAD_SQL} FROM events WHERE shard_id = $1 AND seq >= $2 "
            "ORDER BY seq LIMIT $3",
            stream_id,
            from_seq,
            limit,
        )
        eid, party, cats = endpoint["endpoint_id"], endpoint["party_id"], endpoint["categories"]
        todo = [
            (eid, stream_id, r["seq"], r["type"])
            for r in rows
            if r["type"] in WEBHOOK_TYPES and wants(party, cats, r["type"], _payload(r))
        ]
        if todo:
            async with self.pool.acquire() as conn:
                await conn.executemany(_REDELIVER, todo)
        through = rows[-1]["seq"] if rows else None
        return {"queued": len(todo), "through_seq": through, "more": len(rows) == limit}

    # -- outbox ------------------------------------------------------------------------------------
    async def streams(self) -> dict[str, int]:
        """Every stream of the events table with its outbox lag: committed events after its cursor."""
        return {r["id"]: int(r["head"]) - int(r["last"]) for r in await self.pool.fetch(_STREAMS)}

    async def cursor(self, stream_id: str) -> int:
        """The stream's outbox checkpoint (0 when none)."""
        v = await self.pool.fetchval("SELECT last_seq FROM webhook_cursors WHERE stream_id = $1", stream_id)
        return int(v or 0)

    async def fan_out(self, stream_id: str, page: int = 1000) -> int:
        """Create the delivery rows of the next ``page`` committed events of ``stream_id`` after its
        cursor and move the cursor (one transaction, see the module docstring). Returns the number of
        events passed (0: nothing new, or another dispatcher holds the stream). With no endpoint at
        all the cursor jumps to the stream's head."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO webhook_cursors (stream_id) VALUES ($1) ON CONFLICT DO NOTHING", stream_id
            )
            try:
                async with conn.transaction(isolation="repeatable_read"):
                    return await self._fan_out(conn, stream_id, page)
            except asyncpg.SerializationError:
                return 0  # another dispatcher moved this cursor meanwhile

    async def _fan_out(self, conn: Any, stream_id: str, page: int) -> int:
        last = await conn.fetchval(
            "SELECT last_seq FROM webhook_cursors WHERE stream_id = $1 FOR UPDATE SKIP LOCKED", stream_id
        )
        if last is None:
            return 0
        eps = await conn.fetch("SELECT endpoint_id, party_id, categories FROM webhook_endpoints")
        if not eps:
            head = await conn.fetchval("SELECT max(seq) FROM events WHERE shard_id = $1", stream_id)
            if head is None or head <= last:
                return 0
            await self._move(conn, stream_id, int(head))
            return int(head) - int(last)
        rows = await conn.fetch(
            "SELECT seq, type, CASE WHEN type = ANY($3::text[]) THEN body END AS body,"
            " CASE WHEN type = ANY($3::text[]) AND body IS NULL THEN payload::text END AS payload_text"
            " FROM events WHERE shard_id = $1 AND seq > $2 ORDER BY seq LIMIT $4",
            stream_id,
            last,
            sorted(WEBHOOK_TYPES),
            page,
        )
        if not rows:
            return 0
        by_party: dict[str, list[Any]] = {}
        for e in eps:
            by_party.setdefault(e["party_id"], []).append(e)
        todo = []
        for r in rows:
            if r["body"] is None and r["payload_text"] is None:
                continue
            payload = _payload(r)
            for party in parties_of(payload) & by_party.keys():
                for e in by_party[party]:
                    if wants(party, e["categories"], r["type"], payload):
                        todo.append((e["endpoint_id"], stream_id, r["seq"], r["type"]))
        if todo:
            await conn.executemany(_INSERT_DELIVERY, todo)
        await self._move(conn, stream_id, int(rows[-1]["seq"]))
        return len(rows)

    @staticmethod
    async def _move(conn: Any, stream_id: str, seq: int) -> None:
        await conn.execute(
            "UPDATE webhook_cursors SET last_seq = $2, updated_at = now() WHERE stream_id = $1",
            stream_id,
            seq,
        )

    async def claim(self, limit: int, lease_s: float) -> list[Claimed]:
        """Take up to ``limit`` due pending deliveries for ``lease_s`` seconds (others skip them; a
        dispatcher that dies holding them lets them fall due again when the lease ends)."""
        lease = uuid.uuid4()
        rows = await self.pool.fetch(_CLAIM, limit, float(lease_s), lease)
        return [
            Claimed(
                r["delivery_id"],
                r["endpoint_id"],
                r["stream_id"],
                r["seq"],
                r["attempts"],
                r["url"],
                r["type"],
                r["ts"],
                r["schema_version"],
                _payload(r),
                tuple(bytes(c) for c in r["secrets"]),
                lease,
            )
            for r in rows
        ]

    async def delivered(self, c: Claimed, status: int) -> bool:
        """Record a 2xx answer: the delivery is ``delivered``. False when the lease was lost."""
        done = await self.pool.execute(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status = $3, "
            "last_error = NULL, last_attempt_at = now(), delivered_at = now(), lease = NULL "
            "WHERE delivery_id = $1 AND lease = $2 AND status = 'pending'",
            c.delivery_id,
            c.lease,
            status,
        )
        return str(done) != "UPDATE 0"

    async def failed(self, c: Claimed, status: int | None, error: str, retry_in_s: float | None) -> bool:
        """Record a failed try: pending again in ``retry_in_s`` seconds, or ``dead`` when None (the
        dead-letter list). False when the lease was lost."""
        done = await self.pool.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $3, last_error = $4, "
            "last_attempt_at = now(), lease = NULL, "
            "status = CASE WHEN $5::float8 IS NULL THEN 'dead' ELSE 'pending' END, "
            "next_attempt_at = now() + make_interval(secs => coalesce($5::float8, 0)) "
            "WHERE delivery_id = $1 AND lease = $2 AND status = 'pending'",
            c.delivery_id,
            c.lease,
            status,
            error[:500],
            retry_in_s,
        )
        return str(done) != "UPDATE 0"
