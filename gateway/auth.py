"""Authentication (API keys) and authorisation (roles) for the HTTP and WebSocket API.

Clients send ``Authorization: Bearer <token>`` (or ``X-API-Key: <token>``). The token's sha256 is
looked up in ``api_keys`` (``persistence.api_keys``); results are cached in-process for
``cache_ttl_s`` seconds (default 5 s). A revocation publishes a notice on Redis
(``actors.core.ids.key_revocations_channel``); every gateway process follows it
(``gateway.stream.StreamHub``), drops the key from this cache and closes the key's WebSockets, so a
revoked key stops working at once everywhere (the TTL only bounds a lost notice). Each
authenticated request also takes a token from the key's rate-limit bucket (``gateway.ratelimit``):
429 with ``Retry-After`` when empty.

Roles: seller (availabilities), buyer (requirements), trader (both), operator (shards, health, read
parties), admin (everything, parties and keys), data_scientist (market data, risk health).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from actors.core.roles import ALL_ROLES, STAFF_ROLES, TRADING_ROLES
from gateway.edge.singleflight import SingleFlight
from gateway.problems import Problem
from persistence.api_keys import ApiKeyRepo, hash_token

# Role groups of the dependencies below (one role table: actors.core.roles).
TRADING = TRADING_ROLES
STAFF = STAFF_ROLES
MARKET_DATA = ALL_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: API key id, its party (None for staff keys) and roles."""

    key_id: str
    party_id: str | None
    roles: tuple[str, ...]

    role_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "role_set", frozenset(self.roles))  # built once; principals are cached

    def has(self, *roles: str) -> bool:
        return not self.role_set.isdisjoint(roles)

    def can_place(self, side: str) -> bool:
        """SELL needs seller/trader, BUY needs buyer/trader; staff keys never trade."""
        if self.party_id is None:
            return False
        if side == "SELL":
            return self.has("seller", "trader")
        return self.has("buyer", "trader")

    @property
    def is_staff(self) -> bool:
        return self.has("operator", "admin")


class Authenticator:
    """Resolves tokens to principals with a small TTL cache in front of PostgreSQL."""

    def __init__(self, repo: ApiKeyRepo, cache_ttl_s: float = 5.0, max_entries: int = 100_000) -> None:
        self.repo = repo
        self.cache_ttl_s = cache_ttl_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lookups: SingleFlight[str, Principal | None] = SingleFlight()
        self._generation = 0  # bumped by forget(): a lookup that began before it is not cached

    async def resolve(self, token: str | None) -> Principal | None:
        """The principal for ``token`` or None (missing, malformed, unknown or revoked). Concurrent
        misses for one token share one PostgreSQL lookup."""
        if not token or len(token) > 200:
            return None
        h = hash_token(token)
        hit = self._cache.get(h)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return await self._lookups.run(h, lambda: self._lookup(h, token))

    async def _lookup(self, h: str, token: str) -> Principal | None:
        generation = self._generation
        key = await self.repo.lookup(token)
        p = Principal(key.key_id, key.party_id, key.roles) if key else None
        if generation == self._generation:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            # unknown tokens are cached briefly too, so guessing cannot hammer the database
            self._cache[h] = (p, time.monotonic() + (self.cache_ttl_s if p else 1.0))
        return p

    def forget(self, key_id: str | None = None) -> None:
        """Drop ``key_id``'s cached entries (after its revocation), or the whole cache when None."""
        self._generation += 1
        if key_id is None:
            self._cache.clear()
            return
        for h in [h for h, (p, _) in self._cache.items() if p is not None and p.key_id == key_id]:
            self._cache.pop(h, None)

    async def is_revoked(self, key_id: str) -> bool:
        """True when ``key_id`` no longer exists or was revoked (reads PostgreSQL, not the cache)."""
        key = await self.repo.get(key_id)
        return key is None or key.revoked_at is not None


_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def token_from(request: Request) -> str | None:
    """The API key token of a request (``Authorization: Bearer`` first, then ``X-API-Key``)."""
    h = request.headers.get("authorization")
    if h and h[:7].lower() == "bearer ":
        return h[7:].strip()
    return request.headers.get("x-api-key")


# The two schemes only document the headers in OpenAPI; ``token_from`` reads them.
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
ApiKeyHeaderValue = Annotated[str | None, Depends(_header)]


def require(*roles: str, cost: int = 1) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: authenticate, check that the key has one of ``roles`` (any role when
    empty), then charge ``cost`` rate-limit tokens."""

    async def dep(request: Request, _b: BearerCredentials, _k: ApiKeyHeaderValue) -> Principal:
        state: Any = request.app.state
        p = await state.auth.resolve(token_from(request))
        if p is None:
            raise Problem("unauthenticated", "send a valid API key", headers={"WWW-Authenticate": "Bearer"})
        if roles and not p.has(*roles):
            raise Problem("forbidden", f"needs one of the roles: {', '.join(roles)}")
        await charge(request, p, cost)
        request.state.principal = p
        return p

    return dep


async def charge(request: Request, p: Principal, cost: int) -> None:
    """Take ``cost`` tokens from ``p``'s bucket or raise a 429 problem."""
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is None or cost <= 0:
        return
    d = await limiter.check(p.key_id, p.roles, cost)
    if not d.allowed:
        raise Problem(
            "rate-limited",
            f"too many requests for this API key; retry in {d.retry_after_s} s",
            headers={"Retry-After": str(d.retry_after_s)},
            retry_after_s=d.retry_after_s,
        )


# Dependency aliases of the routes: ``p: TraderPrincipal`` authenticates, checks the roles and
# charges one rate-limit token.
TraderPrincipal = Annotated[Principal, Depends(require(*TRADING))]
"""A seller, buyer or trader key (has a party)."""
SellerPrincipal = Annotated[Principal, Depends(require("seller", "trader"))]
"""A key that may sell (seller, trader)."""
BuyerPrincipal = Annotated[Principal, Depends(require("buyer", "trader"))]
"""A key that may buy (buyer, trader)."""
OrderReader = Annotated[Principal, Depends(require(*TRADING, *STAFF))]
"""A trading key (its own orders) or a staff key (any order)."""
MarketReader = Annotated[Principal, Depends(require(*MARKET_DATA))]
"""Any role: market data."""
AdminPrincipal = Annotated[Principal, Depends(require("admin"))]
"""An admin key."""
OpsPrincipal = Annotated[Principal, Depends(require(*STAFF))]
"""An operator or admin key."""
RiskReader = Annotated[Principal, Depends(require(*STAFF, "data_scientist"))]
"""An operator, admin or data_scientist key."""
