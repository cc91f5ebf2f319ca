"""API keys (table ``api_keys``, migration 0003): issue, look up, revoke; bootstrap admin key.

A token looks like ``td_<key_id>_<secret>``: ``key_id`` is 12 hex characters (public, shown in
listings and logs), ``secret`` 43 URL-safe characters from :func:`secrets.token_urlsafe` (256 bits).
Only ``sha256(token)`` is stored, so a lookup is one indexed equality on ``key_hash``; the token is
returned once by :func:`issue_key` and never again.

Roles: ``seller``, ``buyer``, ``trader`` (trading, bound to a ``party_id``), ``operator``, ``admin``,
``data_scientist`` (staff, ``party_id`` may be NULL).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.core.ids import KEY_PREFIX, key_revocations_channel
from actors.core.roles import ALL_ROLES, is_trading

log = logging.getLogger("tradedesk.persistence")

ROLES: frozenset[str] = frozenset(ALL_ROLES)


def hash_token(token: str) -> str:
    """Hex sha256 of ``token`` (what is stored and looked up)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh ``(key_id, token)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"td_{key_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never the token). ``roles`` as a tuple of role names."""

    key_id: str
    party_id: str | None
    roles: tuple[str, ...]
    label: str | None = None
    created_at: Any = None
    revoked_at: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "party_id": self.party_id,
            "roles": list(self.roles),
            "label": self.label,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _row(r: Any) -> ApiKey:
    return ApiKey(r["key_id"], r["party_id"], tuple(r["roles"]), r["label"], r["created_at"], r["revoked_at"])


_COLS = "key_id, party_id, roles, label, created_at, revoked_at"


class ApiKeyRepo:
    """asyncpg-backed repository; ``pool`` is an ``asyncpg.Pool`` (or anything with ``fetchrow``...).
    With ``redis`` (a ``redis.asyncio.Redis``), :meth:`revoke` also publishes a revocation notice on
    :func:`~actors.core.ids.key_revocations_channel` of ``prefix``, so every gateway process drops
    the key from its cache and closes the key's WebSockets at once."""

    def __init__(self, pool: Any, redis: Any = None, prefix: str = KEY_PREFIX) -> None:
        self.pool = pool
        self.redis = redis
        self.prefix = prefix

    async def issue(
        self, roles: list[str] | tuple[str, ...], party_id: str | None = None, label: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns ``(ApiKey, token)``. The token is not stored and cannot be recovered.

        Raises:
            ValueError: unknown role, or a trading role without ``party_id``.
        """
        roles = tuple(dict.fromkeys(roles))
        bad = set(roles) - ROLES
        if bad or not roles:
            raise ValueError(f"unknown roles: {sorted(bad)}" if bad else "at least one role")
        if is_trading(roles) and not party_id:
            raise ValueError("trading roles need a party_id")
        key_id, token = new_token()
        r = await self.pool.fetchrow(
            f"INSERT INTO api_keys (key_id, key_hash, party_id, roles, label) VALUES ($1, $2, $3, $4, $5) "
            f"RETURNING {_COLS}",
            key_id,
            hash_token(token),
            party_id,
            list(roles),
            label,
        )
        return _row(r), token

    async def lookup(self, token: str) -> ApiKey | None:
        """The active key for ``token`` or None (unknown or revoked)."""
        r = await self.pool.fetchrow(
            f"SELECT {_COLS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_token(token)
        )
        return _row(r) if r else None

    async def get(self, key_id: str) -> ApiKey | None:
        r = await self.pool.fetchrow(f"SELECT {_COLS} FROM api_keys WHERE key_id = $1", key_id)
        return _row(r) if r else None

    async def list(self, party_id: str | None = None) -> list[ApiKey]:
        if party_id is None:
            rows = await self.pool.fetch(f"SELECT {_COLS} FROM api_keys ORDER BY created_at, key_id")
        else:
            rows = await self.pool.fetch(
                f"SELECT {_COLS} FROM api_keys WHERE party_id = $1 ORDER BY created_at, key_id", party_id
            )
        return [_row(r) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke ``key_id``; False when it does not exist or was already revoked.

        The revocation is committed first; then the notice is published (when a Redis client was
        given). A failed publish is logged, not raised: the key is revoked in the database anyway,
        and gateway caches expire within their TTL.
        """
        status = await self.pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )
        done = str(status).endswith(" 1")
        if done and self.redis is not None:
            try:
                await self.redis.publish(key_revocations_channel(self.prefix), json.dumps({"key_id": key_id}))
            except Exception as exc:  # the revoke stands; caches expire within their TTL
                log.warning("revocation notice for key %s not published: %s", key_id, type(exc).__name__)
        return done


async def ensure_admin_key_async(dsn: str, path: str | Path) -> bool:
    """Make sure a usable admin token exists in the file ``path`` (mode 0600).

    If the file holds a token that is still an active admin key, nothing changes (returns False).
    Otherwise a new admin key is issued and written to ``path`` (returns True). The token is never
    logged or printed; tell the operator the *path*.
    """
    import asyncpg

    p = Path(path)
    conn = await asyncpg.connect(dsn)
    try:
        repo = ApiKeyRepo(conn)
        if p.exists():
            existing = p.read_text(encoding="utf-8").strip()
            if existing:
                key = await repo.lookup(existing)
                if key is not None and "admin" in key.roles:
                    os.chmod(p, 0o600)
                    return False
        _, token = await repo.issue(["admin"], None, "bootstrap admin")
    finally:
        await conn.close()
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (token + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.chmod(p, 0o600)
    return True


def ensure_admin_key(dsn: str, path: str | Path) -> bool:
    """Synchronous wrapper of :func:`ensure_admin_key_async` (for ``tradedesk serve`` start-up)."""
    import asyncio

    return asyncio.run(ensure_admin_key_async(dsn, path))
