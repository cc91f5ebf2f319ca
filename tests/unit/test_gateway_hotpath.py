"""The gateway's hot path without the runtime: JSON encoding, the adaptive batch window, one lookup
per key under concurrent misses (auth, rate-limit leases)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import time
from typing import Any

import pytest

from actors.core.commands import Side
from gateway.batching import MicroBatcher
from gateway.edge.encode import encode
from gateway.edge.singleflight import SingleFlight
from gateway.schemas import to_jsonable


@dataclasses.dataclass
class _Fill:
    kg: int
    legs: tuple[int, ...]


class _WithDict:
    def to_dict(self) -> dict[str, Any]:
        return {"pair": (1, 2), "side": Side.BUY}


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "f": [1.5, float("nan"), float("-inf")], "t": (1, "x"), "s": {3}, "e": Side.SELL, "n": None},
        {1: "int key", "nested": {2: [True, False]}},
        _Fill(1000, (2, 3)),
        [_WithDict(), {"k": frozenset()}],
        datetime.datetime(2026, 1, 2, 3, 4, 5),
        2**70,
        "Surat é ü ✓",
        {"neg_zero": -0.0, "big": 1e300, "small": 5e-324},
    ],
)
def test_encode_matches_to_jsonable(value: Any) -> None:
    expected = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":")).encode()
    assert encode(value) == expected


async def test_idle_lane_sends_at_once_and_busy_lane_batches() -> None:
    calls: list[list[int]] = []
    gate = asyncio.Event()

    async def submit(shard: str, cmds: list[int]) -> list[int]:
        calls.append(list(cmds))
        if len(calls) == 1:
            await gate.wait()
        return [c + 1 for c in cmds]

    b = MicroBatcher(submit, window_ms=500, max_batch=64, max_inflight=1)
    t0 = time.perf_counter()
    first = asyncio.create_task(b.submit("S", [0]))
    await asyncio.sleep(0.02)
    assert calls == [[0]]  # nothing was in flight: sent at once, not after the 500 ms window
    rest = [asyncio.create_task(b.submit("S", [i])) for i in range(1, 6)]
    await asyncio.sleep(0.02)
    assert calls == [[0]]  # queued behind the call in flight
    gate.set()
    assert await first == [1]
    assert [await t for t in rest] == [[i + 1] for i in range(1, 6)]
    assert calls == [[0], [1, 2, 3, 4, 5]]  # one call for all that queued meanwhile
    assert time.perf_counter() - t0 < 0.4
    await b.close()


async def test_large_request_is_cut_to_max_batch_in_order() -> None:
    calls: list[list[int]] = []

    async def submit(shard: str, cmds: list[int]) -> list[int]:
        calls.append(list(cmds))
        return [c * 2 for c in cmds]

    b = MicroBatcher(submit, window_ms=0, max_batch=4)
    assert await b.submit("S", list(range(10))) == [c * 2 for c in range(10)]
    assert [len(c) for c in calls] == [4, 4, 2]
    assert b.depth("S") == 0
    await b.close()


async def test_single_flight_shares_one_load_and_its_error() -> None:
    sf: SingleFlight[str, int] = SingleFlight()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.01)
        return 7

    assert await asyncio.gather(*(sf.run("k", load) for _ in range(50))) == [7] * 50
    assert loads == 1
    assert await sf.run("k", load) == 7 and loads == 2  # finished loads are not cached here

    async def broken() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    res = await asyncio.gather(*(sf.run("x", broken) for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in res] == [RuntimeError] * 3


async def test_single_flight_survives_a_cancelled_caller() -> None:
    sf: SingleFlight[str, int] = SingleFlight()

    async def load() -> int:
        await asyncio.sleep(0.02)
        return 1

    first = asyncio.create_task(sf.run("k", load))
    second = asyncio.create_task(sf.run("k", load))
    await asyncio.sleep(0.005)
    first.cancel()
    assert await second == 1
    with pytest.raises(asyncio.CancelledError):
        await first


class _CountingRepo:
    def __init__(self) -> None:
        self.lookups = 0

    async def lookup(self, token: str) -> Any:
        from persistence.api_keys import ApiKey

        self.lookups += 1
        await asyncio.sleep(0.01)
        return ApiKey("K1", "P1", ("trader",))


async def test_concurrent_auth_misses_share_one_lookup_and_forget_wins() -> None:
    from gateway.auth import Authenticator

    repo = _CountingRepo()
    auth = Authenticator(repo, cache_ttl_s=60)  # type: ignore[arg-type]
    got = await asyncio.gather(*(auth.resolve("tok") for _ in range(64)))
    assert {p.key_id for p in got if p is not None} == {"K1"} and repo.lookups == 1
    assert (await auth.resolve("tok")) is not None and repo.lookups == 1  # cached
    # a revocation notice during a lookup: that lookup's answer is not cached
    auth.forget()
    pending = asyncio.create_task(auth.resolve("tok"))
    await asyncio.sleep(0.001)
    auth.forget("K1")
    await pending
    await auth.resolve("tok")
    assert repo.lookups == 3


async def test_lease_fetched_once_for_concurrent_requests(redis_url: str, key_prefix: str) -> None:
    import redis.asyncio as aioredis

    from gateway.ratelimit import RateLimiter, RoleLimit

    redis_client = aioredis.from_url(redis_url)
    rl = RateLimiter(redis_client, {"trader": RoleLimit(1000.0, 5000)}, prefix=key_prefix, max_lease=50)
    taken = 0
    real = rl._take

    async def counting(key_id: str, lim: RoleLimit, n: int) -> tuple[bool, int]:
        nonlocal taken
        taken += 1
        return await real(key_id, lim, n)

    rl._take = counting  # type: ignore[method-assign]
    got = await asyncio.gather(*(rl.check("k", ("trader",)) for _ in range(50)))
    assert all(d.allowed for d in got)
    assert taken == 1  # one 50-token lease served all 50 requests
    await redis_client.aclose()
