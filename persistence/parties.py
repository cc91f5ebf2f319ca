"""Repository for the ``parties`` table (migration 0002): create, update, get, list and links.

The gateway's admin API calls it; the risk pool reads parties through :meth:`PartyRepository.get_many`.
Identifiers are validated and normalised on write: PAN ``AAAAA9999A`` and GSTIN (15 chars, state
code + PAN + entity + ``Z`` + check) upper-case without spaces, mobile as its last 10 digits,
country ISO 3166-1 alpha-2. ``credit_limit`` is paise (None = no limit). Every write bumps the
party's ``version`` and, when a Redis client is given, the global ``<prefix>parties:version`` key and
a ``<prefix>parties:changed`` message, which is how risk replicas invalidate their party caches.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from actors.core.ids import KEY_PREFIX
from actors.core.risk.rules import KycStatus, Party, linked_by_identity
from actors.core.roles import Role

if TYPE_CHECKING:
    import redis.asyncio as aredis

#: An asyncpg pool or connection.
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

PAN_RE = re.compile(r"^[A-Z]{5}[0-9]{4}[A-Z]$")
GSTIN_RE = re.compile(r"^[0-9]{2}[A-Z0-9]{13}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")

_COLUMNS = (
    "party_id, name, role, kyc_status, sanctioned, country, pan, gstin, mobile, credit_limit, "
    "linked_parties, version"
)
_MUTABLE = frozenset(
    {
        "name",
        "role",
        "kyc_status",
        "sanctioned",
        "country",
        "pan",
        "gstin",
        "mobile",
        "credit_limit",
        "linked_parties",
    }
)


class PartyExists(Exception):
    """A party with this id already exists."""


class PartyNotFound(KeyError):
    """No party with this id."""


def _clean_text(value: Any, field: str, pattern: re.Pattern[str] | None = None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    out = "".join(value.split()).upper()
    if pattern is not None and not pattern.match(out):
        raise ValueError(f"{field} {value!r} is not valid")
    return out


def normalise_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise party fields (any subset). Raises ValueError with a clear message."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "party_id":
            if not isinstance(value, str) or not value.strip() or len(value) > 128:
                raise ValueError("party_id must be a non-empty string of at most 128 characters")
            out[key] = value.strip()
        elif key == "name":
            out[key] = None if value is None else str(value)
        elif key == "role":
            out[key] = Role(str(value).lower()).value
        elif key == "kyc_status":
            out[key] = KycStatus(str(value).upper()).value
        elif key == "sanctioned":
            if not isinstance(value, bool):
                raise ValueError("sanctioned must be true or false")
            out[key] = value
        elif key == "country":
            out[key] = _clean_text(value, "country", COUNTRY_RE) or "IN"
        elif key == "pan":
            out[key] = _clean_text(value, "pan", PAN_RE)
        elif key == "gstin":
            out[key] = _clean_text(value, "gstin", GSTIN_RE)
        elif key == "mobile":
            if value is None or value == "":
                out[key] = None
            else:
                digits = "".join(ch for ch in str(value) if ch.isdigit())
                if len(digits) < 10:
                    raise ValueError(f"mobile {value!r} has fewer than 10 digits")
                out[key] = digits[-10:]
        elif key == "credit_limit":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError("credit_limit must be a non-negative integer (paise) or null")
            out[key] = value
        elif key == "linked_parties":
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValueError("linked_parties must be a list of party ids")
            out[key] = sorted({str(v) for v in value})
        else:
            raise ValueError(f"unknown party field {key!r}")
    return out


def party_from_row(row: Mapping[str, Any]) -> Party:
    """A :class:`Party` from a ``parties`` row (asyncpg Record or dict)."""
    return Party(
        party_id=row["party_id"],
        role=row["role"],
        kyc_status=row["kyc_status"],
        sanctioned=bool(row["sanctioned"]),
        country=row["country"],
        pan=row["pan"],
        gstin=row["gstin"],
        mobile=row["mobile"],
        credit_limit=None if row["credit_limit"] is None else int(row["credit_limit"]),
        linked_parties=frozenset(row["linked_parties"] or ()),
        version=int(row["version"]),
        name=row["name"],
    )


def party_to_dict(p: Party) -> dict[str, Any]:
    """JSON-ready dict of a party (the admin API's representation)."""
    return {
        "party_id": p.party_id,
        "name": p.name,
        "role": str(p.role),
        "kyc_status": str(p.kyc_status),
        "sanctioned": p.sanctioned,
        "country": p.country,
        "pan": p.pan,
        "gstin": p.gstin,
        "mobile": p.mobile,
        "credit_limit": p.credit_limit,
        "linked_parties": sorted(p.linked_parties),
        "version": p.version,
    }


class PartyRepository:
    """asyncpg repository for parties.

    Args:
        db: an asyncpg ``Pool`` or ``Connection``.
        redis: optional ``redis.asyncio.Redis``; when given, writes bump ``<prefix>parties:version``
            and publish the party id on ``<prefix>parties:changed`` (cache invalidation).
        prefix: Redis key prefix (``td:``).
    """

    def __init__(self, db: Db, redis: aredis.Redis | None = None, prefix: str = KEY_PREFIX) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix

    async def _changed(self, party_ids: Iterable[str]) -> None:
        if self.redis is None:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(f"{self.prefix}parties:version")
        for pid in party_ids:
            pipe.publish(f"{self.prefix}parties:changed", pid)
        await pipe.execute()

    async def create(self, **fields: Any) -> Party:
        """Insert a party (``party_id`` required; other fields default as in the table).

        Raises:
            PartyExists: the id is taken.
            ValueError: a field is invalid.
        """
        if "party_id" not in fields:
            raise ValueError("party_id is required")
        clean = normalise_fields(fields)
        cols = list(clean)
        placeholders = ", ".join(f"${i + 1}" for i in range(len(cols)))
        sql = (
            f"INSERT INTO parties ({', '.join(cols)}) VALUES ({placeholders}) "
            f"ON CONFLICT (party_id) DO NOTHING RETURNING {_COLUMNS}"
        )
        row = await self.db.fetchrow(sql, *clean.values())
        if row is None:
            raise PartyExists(clean["party_id"])
        await self._changed([clean["party_id"]])
        return party_from_row(row)

    async def update(self, party_id: str, **changes: Any) -> Party:
        """Change fields of a party; bumps its ``version``.

        Raises:
            PartyNotFound: no such party.
            ValueError: a field is invalid or not changeable.
        """
        bad = set(changes) - _MUTABLE
        if bad:
            raise ValueError(f"cannot change {sorted(bad)}")
        clean = normalise_fields(changes)
        sets = [f"{col} = ${i + 2}" for i, col in enumerate(clean)]
        sets += ["version = version + 1", "updated_at = now()"]
        sql = f"UPDATE parties SET {', '.join(sets)} WHERE party_id = $1 RETURNING {_COLUMNS}"
        row = await self.db.fetchrow(sql, party_id, *clean.values())
        if row is None:
            raise PartyNotFound(party_id)
        await self._changed([party_id])
        return party_from_row(row)

    async def get(self, party_id: str) -> Party | None:
        """The party or None."""
        row = await self.db.fetchrow(f"SELECT {_COLUMNS} FROM parties WHERE party_id = $1", party_id)
        return None if row is None else party_from_row(row)

    async def get_many(self, party_ids: Iterable[str]) -> dict[str, Party]:
        """Parties by id (missing ids are absent), one query."""
        ids = list(set(party_ids))
        if not ids:
            return {}
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM parties WHERE party_id = ANY($1::text[])", ids)
        return {r["party_id"]: party_from_row(r) for r in rows}

    async def list(self, limit: int = 100, offset: int = 0, role: str | None = None) -> list[Party]:
        """Parties ordered by id; ``limit`` 1..1000, optional ``role`` filter."""
        limit = max(1, min(int(limit), 1000))
        if role is None:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM parties ORDER BY party_id LIMIT $1 OFFSET $2", limit, max(0, offset)
            )
        else:
            rows = await self.db.fetch(
                f"SELECT {_COLUMNS} FROM parties WHERE role = $3 ORDER BY party_id LIMIT $1 OFFSET $2",
                limit,
                max(0, offset),
                Role(role).value,
            )
        return [party_from_row(r) for r in rows]

    async def link(self, a: str, b: str) -> None:
        """Record an explicit link between parties ``a`` and ``b`` (both directions)."""
        if a == b:
            raise ValueError("a party cannot be linked to itself")
        async with _transaction(self.db) as conn:
            for x, y in ((a, b), (b, a)):
                row = await conn.fetchrow(
                    "UPDATE parties SET linked_parties = (SELECT array_agg(DISTINCT v ORDER BY v)"
                    "  FROM unnest(array_append(linked_parties, $2)) v),"
                    " version = version + 1, updated_at = now() WHERE party_id = $1 RETURNING party_id",
                    x,
                    y,
                )
                if row is None:
                    raise PartyNotFound(x)
        await self._changed([a, b])

    async def unlink(self, a: str, b: str) -> None:
        """Remove an explicit link between ``a`` and ``b`` (both directions)."""
        async with _transaction(self.db) as conn:
            await conn.execute(
                "UPDATE parties SET linked_parties = array_remove(linked_parties, CASE party_id"
                " WHEN $1 THEN $2 ELSE $1 END), version = version + 1, updated_at = now()"
                " WHERE party_id IN ($1, $2)",
                a,
                b,
            )
        await self._changed([a, b])

    async def linked_parties(self, party_id: str) -> dict[str, tuple[str, ...]]:
        """Parties linked to ``party_id`` and why: explicit link (``WASH_TRADE``), shared PAN
        (including the PAN inside a GSTIN), GSTIN or mobile. What the gateway puts into
        ``PlaceOrder.linked_parties``. Raises PartyNotFound."""
        me = await self.get(party_id)
        if me is None:
            raise PartyNotFound(party_id)
        pans = list(me.pans)
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM parties WHERE party_id <> $1 AND ("
            " party_id = ANY($2::text[]) OR $1 = ANY(linked_parties)"
            " OR pan = ANY($3::text[]) OR substr(gstin, 3, 10) = ANY($3::text[])"
            " OR (gstin IS NOT NULL AND gstin = $4) OR (mobile IS NOT NULL AND mobile = $5))",
            party_id,
            sorted(me.linked_parties),
            pans,
            me.gstin,
            me.mobile,
        )
        return linked_by_identity(me, [party_from_row(r) for r in rows])


@contextlib.asynccontextmanager
async def _transaction(db: Db) -> AsyncIterator[asyncpg.Connection]:
    """``async with`` a connection in a transaction, from a pool or a connection."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db
