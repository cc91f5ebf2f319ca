"""Token-bucket rate limits per API key, shared by every gateway process through Redis.

One bucket per key id: capacity ``burst`` tokens, refilled at ``rate`` tokens per second. Each request
takes one token (a batch request takes one per order). The check is one Lua script call (atomic, one
round trip); the bucket is stored in the hash ``<prefix>rl:<key_id>`` as ``{tokens, ts_ms}`` and
expires when idle. Limits are configured per role (``RoleLimit``); a key with several roles gets the
most generous of them. When the bucket is empty the caller answers 429 with ``Retry-After`` seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from actors.core.ids import KEY_PREFIX

LUA_TOKEN_BUCKET = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local b = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000.0)
  ts = now
end
local allowed = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000.0 / rate)
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', key, math.ceil(burst * 1000.0 / rate) + 1000)
return {allowed, wait_ms}
"""


@dataclass(frozen=True, slots=True)
class RoleLimit:
    """``rate`` tokens per second, ``burst`` bucket capacity (requests)."""

    rate: float
    burst: int


def default_limits(rate: float, burst: int) -> dict[str, RoleLimit]:
    """Per-role limits from the settings' base rate: operators and admins get 5x (they drive tools),
    data scientists a quarter (read-only analytics)."""
    base = RoleLimit(rate, burst)
    return {
        "seller": base,
        "buyer": base,
        "trader": base,
        "operator": RoleLimit(rate * 5, burst * 5),
        "admin": RoleLimit(rate * 5, burst * 5),
        "data_scientist": RoleLimit(max(rate / 4, 1.0), max(burst // 4, 1)),
    }


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after_s: int


class RateLimiter:
    """Redis token buckets. ``redis`` is a ``redis.asyncio.Redis``.

    To keep Redis off the per-request path, a process takes tokens from the shared bucket in leases
    of ``lease_fraction`` of the burst (at most ``max_lease``; 1 for small buckets, which stay exact)
    and spends them locally for at most ``lease_ttl_s``. A lease that cannot be had in full falls
    back to taking exactly what the request needs, so a key is never refused while its bucket holds
    enough tokens; at worst a process holds one unspent lease, i.e. the limit is exceeded by at most
    one lease per process for ``lease_ttl_s``. One lease is fetched at a time per key: requests that
    find the lease spent while another request is fetching the next one wait for it instead of each
    asking Redis (a burst of concurrent requests costs one round trip, not one per request).
    """

    def __init__(
        self,
        redis: Any,
        limits: dict[str, RoleLimit],
        prefix: str = KEY_PREFIX,
        lease_fraction: float = 0.02,
        max_lease: int = 50,
        lease_ttl_s: float = 0.5,
    ) -> None:
        self.redis = redis
        self.limits = limits
        self.prefix = prefix
        self.lease_fraction = lease_fraction
        self.max_lease = max_lease
        self.lease_ttl_s = lease_ttl_s
        self._script = redis.register_script(LUA_TOKEN_BUCKET)
        self._local: dict[str, tuple[int, float]] = {}
        self._fetching: dict[str, asyncio.Future[None]] = {}

    def limit_for(self, roles: tuple[str, ...] | list[str]) -> RoleLimit:
        known = [self.limits[r] for r in roles if r in self.limits]
        if not known:
            return RoleLimit(1.0, 1)
        return max(known, key=lambda x: (x.rate, x.burst))

    async def check(self, key_id: str, roles: tuple[str, ...] | list[str], cost: int = 1) -> Decision:
        """Take ``cost`` tokens from ``key_id``'s bucket; ``retry_after_s`` >= 1 when refused.

        A cost above the bucket capacity is charged as the capacity (a full bucket admits it)."""
        lim = self.limit_for(roles)
        cost = max(1, min(cost, lim.burst))
        while True:
            now = time.monotonic()
            have, until = self._local.get(key_id, (0, 0.0))
            if have >= cost and until > now:
                self._local[key_id] = (have - cost, until)
                return Decision(True, 0)
            fetching = self._fetching.get(key_id)
            if fetching is None:
                break
            await asyncio.shield(fetching)  # another request is fetching this key's next lease
        lease = max(1, min(self.max_lease, int(lim.burst * self.lease_fraction)))
        if lease > cost:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._fetching[key_id] = done
            try:
                allowed, _ = await self._take(key_id, lim, lease)
            finally:
                del self._fetching[key_id]
                done.set_result(None)
            if allowed:
                self._local[key_id] = (lease - cost, time.monotonic() + self.lease_ttl_s)
                return Decision(True, 0)
        allowed, wait_ms = await self._take(key_id, lim, cost)
        if allowed:
            return Decision(True, 0)
        return Decision(False, max(1, math.ceil(wait_ms / 1000)))

    async def _take(self, key_id: str, lim: RoleLimit, n: int) -> tuple[bool, int]:
        now_ms = int(time.time() * 1000)
        allowed, wait_ms = await self._script(
            keys=[f"{self.prefix}rl:{key_id}"], args=[lim.rate, lim.burst, now_ms, n]
        )
        return int(allowed) == 1, int(wait_ms)
