"""Cross-shard credit exposure per buyer, reserved atomically in Redis.

A buyer can trade in many shards at once, so its credit limit cannot be enforced by any one shard.
Each buyer has one Redis counter ``<prefix>exposure:<buyer>`` holding its open exposure in paise
notional: allocations (unpaid trades), live reservations, and credit granted to batches in flight.
A Lua script (Redis runs each script atomically, so no two grants interleave) grants every request
``min(request, max(0, limit - exposure))`` and adds the grant to the exposure; a shard that used
less than its grant gives the rest back with :meth:`ExposureStore.settle`. Released reservations
(and settled payments) give exposure back with :meth:`ExposureStore.release`. Hence the sum of all
grants outstanding plus allocations never exceeds the limit, whatever the interleaving of shards.

On start the counters are rebuilt from PostgreSQL (:func:`persistence.risk_reads.open_exposure`),
the source of truth: the balance of each buyer's ledger exposure account (undelivered contract
notional plus invoiced and not yet paid), plus allocations the settlement host has not yet opened a
contract for, plus every reservation still ``RESERVED``. Between rebuilds the settlement host
applies each committed batch's exposure change (delivery re-pricing, payments, cancels) with
:meth:`ExposureStore.adjust` (docs/post-trade.md, "Exposure").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from actors.core.ids import KEY_PREFIX
from persistence.risk_reads import open_exposure

DEFAULT_PREFIX = KEY_PREFIX

# KEYS: the distinct exposure keys of the call. ARGV[1]: JSON list of entries [key index (1-based),
# amount (paise), limit (paise, -1 = none)], applied in order. Returns a JSON list of
# [exposure before, grant] per entry (one bulk string: cheap to send and parse for large batches).
# Amounts are integers below 2^53 (exact in Lua numbers); replies are formatted with %d, never %g.
RESERVE_LUA = """
local entries = cjson.decode(ARGV[1])
local cur = {}
local out = {}
for i, e in ipairs(entries) do
  local k = e[1]
  if cur[k] == nil then cur[k] = tonumber(redis.call('GET', KEYS[k]) or '0') end
  local before = cur[k]
  local amount = e[2]
  local limit = e[3]
  local grant = amount
  if grant < 0 then grant = 0 end
  if limit >= 0 then
    local room = limit - before
    if room < 0 then room = 0 end
    if grant > room then grant = room end
  end
  if grant > 0 then cur[k] = tonumber(redis.call('INCRBY', KEYS[k], string.format('%d', grant))) end
  out[i] = string.format('[%d,%d]', before, grant)
end
return '[' .. table.concat(out, ',') .. ']'
"""


def pack_reserve(prefix: str, entries: Sequence[tuple[str, int, int | None]]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of :data:`RESERVE_LUA` for entries (buyer, amount paise, limit paise or None)."""
    index: dict[str, int] = {}
    packed = []
    for buyer, amount, limit in entries:
        k = index.setdefault(buyer, len(index) + 1)
        packed.append([k, max(0, int(amount)), -1 if limit is None else int(limit)])
    keys = [_key(prefix, b) for b in index]
    return keys, [json.dumps(packed, separators=(",", ":"))]


def unpack_reserve(raw: Any) -> list[tuple[int, int]]:
    """(exposure before, grant) per entry from the script's reply."""
    out = json.loads(raw) if raw else []
    return [(int(b), int(g)) for b, g in out]


# KEYS[i]: exposure key; ARGV[i]: signed delta (paise). Exposure never goes below zero.
ADJUST_LUA = """
local out = {}
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[i])
  if v < 0 then redis.call('SET', KEYS[i], 0); v = 0 end
  out[i] = v
end
return out
"""


def _key(prefix: str, buyer: str) -> str:
    return f"{prefix}exposure:{buyer}"


class ExposureStore:
    """Synchronous Redis exposure store (used from shard actors and benchmarks).

    Args:
        client: a ``redis.Redis`` (sync) client.
        prefix: key prefix (``td:`` by default; tests use a unique one).
    """

    def __init__(self, client: Any, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._reserve = client.register_script(RESERVE_LUA)
        self._adjust = client.register_script(ADJUST_LUA)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> ExposureStore:
        """A store on a new client for ``url`` (``redis://host:port/db``)."""
        import redis

        return cls(redis.Redis.from_url(url), prefix)

    def reserve(self, entries: Sequence[tuple[str, int, int | None]]) -> list[tuple[int, int]]:
        """Atomically grant credit. ``entries``: (buyer, amount paise, limit paise or None); an
        amount of 0 just reads the buyer's exposure.

        Returns (exposure before, grant) per entry, in order. Entries are applied one after another
        inside one script, so two entries of the same buyer see each other's grants.
        """
        if not entries:
            return []
        keys, args = pack_reserve(self.prefix, entries)
        return unpack_reserve(self._reserve(keys=keys, args=args))

    def adjust(self, deltas: Mapping[str, int]) -> dict[str, int]:
        """Add signed ``deltas`` (paise) to buyers' exposure, floored at 0; returns the new values."""
        items = [(b, int(d)) for b, d in deltas.items() if d]
        if not items:
            return {}
        out = self._adjust(keys=[_key(self.prefix, b) for b, _ in items], args=[d for _, d in items])
        return {b: int(v) for (b, _), v in zip(items, out, strict=True)}

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> dict[str, int]:
        """After a batch: give back ``grant - used`` for granted buyers; add ``used`` for buyers
        without a grant (no credit limit, tracked for reporting). Paise."""
        deltas: dict[str, int] = {}
        for buyer, grant in grants.items():
            deltas[buyer] = -max(0, int(grant) - int(used.get(buyer, 0)))
        for buyer, amount in used.items():
            if buyer not in grants:
                deltas[buyer] = int(amount)
        return self.adjust(deltas)

    def release(self, amounts: Mapping[str, int]) -> dict[str, int]:
        """Give back exposure (paise): a released reservation, a settled payment, a cancelled trade."""
        return self.adjust({b: -abs(int(a)) for b, a in amounts.items()})

    def get(self, buyers: Sequence[str]) -> dict[str, int]:
        """Current exposure (paise) of ``buyers``."""
        if not buyers:
            return {}
        vals = self.client.mget([_key(self.prefix, b) for b in buyers])
        return {b: int(v or 0) for b, v in zip(buyers, vals, strict=True)}

    def load(self, exposures: Mapping[str, int]) -> int:
        """Replace all exposure counters under the prefix with ``exposures`` (paise); returns count."""
        pattern = f"{self.prefix}exposure:*"
        pipe = self.client.pipeline(transaction=True)
        for key in self.client.scan_iter(match=pattern, count=1000):
            pipe.delete(key)
        for buyer, value in exposures.items():
            pipe.set(_key(self.prefix, buyer), int(value))
        pipe.execute()
        return len(exposures)


async def rebuild_exposure(dsn: str, store: ExposureStore) -> int:
    """Rebuild the Redis counters from PostgreSQL at ``dsn``; returns the number of buyers."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        exposures = await open_exposure(conn)
    finally:
        await conn.close()
    return store.load(exposures)
