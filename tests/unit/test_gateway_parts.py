"""Gateway building blocks without the runtime: schemas, problems, batcher, idempotency, rate limits."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from gateway import problems
from gateway.batching import BatchFailed, MicroBatcher, Overloaded
from gateway.idempotency import fingerprint
from gateway.schemas import AmendIn, AvailabilityIn, BatchIn, RequirementIn

LOC = {"lat": 21.17, "lon": 72.83, "region": "IN-GJ", "city": "Surat"}


def test_quantity_converted_once_to_kg() -> None:
    a = AvailabilityIn.model_validate(
        {
            "client_order_id": "c1",
            "commodity": "Kapas",
            "quantity": {"value": 2, "unit": "bale"},
            "location": LOC,
            "price_paise_per_kg": 7000,
            "quality": {"micronaire": 4.2},
        }
    )
    cmd = a.to_command(123, "P1", ("P9",))
    assert (cmd.quantity_kg, cmd.commodity, cmd.side, cmd.ts, cmd.linked_parties) == (
        340,
        "cotton",
        "SELL",
        123,
        ("P9",),
    )


def test_requirement_ranges_and_unknowns() -> None:
    r = RequirementIn.model_validate(
        {
            "client_order_id": "r1",
            "commodity": "cotton",
            "quantity": {"value": 1.5, "unit": "tonne"},
            "location": LOC,
            "max_price_paise_per_kg": 7100,
            "quality_ranges": {"micronaire": {"min": 3.5, "max": 4.9}},
            "intent": "NEGOTIATE",
        }
    )
    cmd = r.to_command(1, "B")
    assert (
        cmd.quality_ranges == {"micronaire": (3.5, 4.9)}
        and cmd.quantity_kg == 1500
        and cmd.intent == "NEGOTIATE"
    )
    with pytest.raises(ValidationError) as ei:
        RequirementIn.model_validate(
            {
                "client_order_id": "r1",
                "commodity": "cotton",
                "quantity": {"value": 1, "unit": "furlong"},
                "location": {**LOC, "region": "gujarat"},
                "max_price_paise_per_kg": -1,
                "bogus": 1,
            }
        )
    locs = {tuple(e["loc"]) for e in ei.value.errors()}
    assert ("quantity", "unit") in locs and ("location", "region") in locs and ("bogus",) in locs
    with pytest.raises(ValidationError):
        AmendIn.model_validate({})
    for v in (1e300, 1e-9, float("nan")):
        with pytest.raises(ValidationError):
            AmendIn.model_validate({"quantity": {"value": v, "unit": "candy"}})
    with pytest.raises(ValidationError):
        BatchIn.model_validate({"orders": [{"client_order_id": "x"}]})


def test_problem_handlers_never_leak() -> None:
    from fastapi.testclient import TestClient

    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    @app.get("/p")
    async def p() -> None:
        raise problems.Problem("forbidden", "nope")

    c = TestClient(app, raise_server_exceptions=False)
    r = c.get("/boom")
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:tradedesk:problem:internal-error"
    r = c.get("/p")
    assert r.status_code == 403 and r.json()["type"].endswith(":forbidden")
    r = c.get("/missing")
    assert r.status_code == 404 and r.json()["type"].endswith(":not-found")


def test_fingerprint_canonical_json() -> None:
    assert fingerprint("POST", "/a", b'{"x":1,"y":2}') == fingerprint("POST", "/a", b'{ "y": 2, "x": 1 }')
    assert fingerprint("POST", "/a", b'{"x":1}') != fingerprint("POST", "/b", b'{"x":1}')


async def test_batcher_groups_and_routes() -> None:
    calls: list[list[int]] = []

    async def submit(shard: str, cmds: list[int]) -> list[int]:
        calls.append(list(cmds))
        await asyncio.sleep(0.002)
        return [c * 10 for c in cmds]

    b = MicroBatcher(submit, window_ms=2, max_batch=64, queue_max=1000)
    res = await asyncio.gather(*(b.submit("S", [i]) for i in range(100)))
    assert [r[0] for r in res] == [i * 10 for i in range(100)]
    assert len(calls) < 20 and max(len(c) for c in calls) <= 64
    assert await b.submit("S", [1, 2, 3]) == [10, 20, 30]
    await b.close()


async def test_batcher_overload_and_failure() -> None:
    gate = asyncio.Event()

    async def slow(shard: str, cmds: list[int]) -> list[int]:
        await gate.wait()
        return cmds

    b = MicroBatcher(slow, window_ms=0, max_batch=4, queue_max=8, max_inflight=1)
    tasks = [asyncio.create_task(b.submit("S", [i])) for i in range(8)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await b.submit("S", [99])
    gate.set()
    assert [t.result() if t.done() else await t for t in tasks] == [[i] for i in range(8)]

    async def broken(shard: str, cmds: list[int]) -> list[int]:
        raise RuntimeError("db down")

    b2 = MicroBatcher(broken, window_ms=0)
    with pytest.raises(BatchFailed):
        await b2.submit("S", [1])
    await b.close()
    await b2.close()


@pytest.fixture()
async def redis_client(redis_url: str):  # type: ignore[no-untyped-def]
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        await r.ping()
    except Exception:  # pragma: no cover - no local redis
        pytest.skip("no redis")
    yield r
    await r.aclose()


async def test_token_bucket(redis_client, key_prefix: str) -> None:  # type: ignore[no-untyped-def]
    from gateway.ratelimit import RateLimiter, RoleLimit

    rl = RateLimiter(redis_client, {"buyer": RoleLimit(1.0, 3)}, prefix=key_prefix)
    got = [await rl.check("k1", ("buyer",)) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert got[-1].retry_after_s >= 1
    assert (await rl.check("k2", ("buyer",))).allowed


async def test_idempotency_middleware(redis_client, key_prefix: str) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from gateway.auth import Principal
    from gateway.idempotency import IdempotencyMiddleware

    app = FastAPI()
    problems.install(app)
    counter = {"n": 0}

    @app.post("/x")
    async def x(body: dict) -> dict:  # type: ignore[type-arg]
        counter["n"] += 1
        return {"n": counter["n"], "body": body}

    async def resolve(token: str) -> Principal | None:
        return Principal("kid", "P", ("trader",)) if token == "good" else None

    app.add_middleware(
        IdempotencyMiddleware, get_redis=lambda: redis_client, resolve=resolve, prefix=key_prefix
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        h = {"Authorization": "Bearer good", "Idempotency-Key": "k-1"}
        r1 = await c.post("/x", json={"a": 1}, headers=h)
        r2 = await c.post(
            "/x", content=json.dumps({"a": 1}), headers={**h, "content-type": "application/json"}
        )
        assert r1.json() == r2.json() == {"n": 1, "body": {"a": 1}}
        assert r2.headers.get("idempotent-replayed") == "true"
        r3 = await c.post("/x", json={"a": 2}, headers=h)
        assert r3.status_code == 422 and r3.json()["type"].endswith("idempotency-key-reused")
        r4 = await c.post("/x", json={"a": 1}, headers={"Idempotency-Key": "k-1"})
        assert r4.json()["n"] == 2  # unauthenticated: not scoped, not replayed
