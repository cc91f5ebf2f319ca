"""Gateway building blocks without the runtime: schemas, problems, batcher, idempotency, rate limits."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

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
async def redis_client(redis_url: str):
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis_url)
    try:
        await r.ping()
    except Exception:  # pragma: no cover - no local redis
        pytest.skip("no redis")
    yield r
    await r.aclose()


async def test_token_bucket(redis_client, key_prefix: str) -> None:
    from gateway.ratelimit import RateLimiter, RoleLimit

    rl = RateLimiter(redis_client, {"buyer": RoleLimit(1.0, 3)}, prefix=key_prefix)
    got = [await rl.check("k1", ("buyer",)) for _ in range(4)]
    assert [d.allowed for d in got] == [True, True, True, False]
    assert got[-1].retry_after_s >= 1
    assert (await rl.check("k2", ("buyer",))).allowed


async def test_idempotency_middleware(redis_client, key_prefix: str) -> None:
    import httpx

    from gateway.auth import Principal
    from gateway.idempotency import IdempotencyMiddleware

    app = FastAPI()
    problems.install(app)
    counter = {"n": 0}

    @app.post("/x")
    async def x(body: dict) -> dict:
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


# --- input rules at the edge (issue 10: text, strict numbers, units, quality ranges, region boxes) ----

SELL = {
    "client_order_id": "s1",
    "commodity": "cotton",
    "quantity": {"value": 10, "unit": "tonne"},
    "location": LOC,
    "price_paise_per_kg": 7000,
    "quality": {"micronaire": 4.2},
}
BUY = {
    "client_order_id": "b1",
    "commodity": "cotton",
    "quantity": {"value": 4, "unit": "tonne"},
    "location": LOC,
    "max_price_paise_per_kg": 7200,
    "quality_ranges": {"micronaire": {"min": 3.5, "max": 4.9}},
    "quality_target": {"micronaire": 4.2},
    "max_distance_km": 300,
}
SEARCH = {k: v for k, v in BUY.items() if k != "client_order_id"}


def _with(doc: dict, path: tuple, value: object) -> dict:
    """A deep copy of ``doc`` with ``value`` at ``path`` (a tuple of keys)."""
    out = json.loads(json.dumps(doc))
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


def _error_locs(model: type[BaseModel], doc: dict) -> set[tuple]:
    with pytest.raises(ValidationError) as ei:
        model.model_validate(doc)
    return {tuple(e["loc"]) for e in ei.value.errors()}


def _text_cases() -> list[tuple[type[BaseModel], dict, tuple]]:
    from gateway.schemas import ApiKeyIn, PartyIn, PartyPatch, SearchIn, ShardIn

    party = {"party_id": "P1", "name": "Shree Cotton"}
    return [
        (AvailabilityIn, SELL, ("location", "city")),
        (AvailabilityIn, SELL, ("location", "district")),
        (AvailabilityIn, SELL, ("commodity",)),
        (AvailabilityIn, SELL, ("client_order_id",)),
        (AvailabilityIn, SELL, ("location", "region")),
        (AvailabilityIn, {**SELL, "allow_list": ["B1"]}, ("allow_list", 0)),
        (RequirementIn, BUY, ("location", "city")),
        (RequirementIn, BUY, ("commodity",)),
        (SearchIn, SEARCH, ("location", "city")),
        (PartyIn, party, ("name",)),
        (PartyIn, party, ("party_id",)),
        (PartyIn, {**party, "linked_parties": ["P2"]}, ("linked_parties", 0)),
        (PartyPatch, {"name": "x"}, ("name",)),
        (ApiKeyIn, {"party_id": "P1", "roles": ["buyer"], "label": "desk"}, ("label",)),
        (ShardIn, {"region": "IN-GJ", "commodity": "cotton"}, ("commodity",)),
    ]


@pytest.mark.parametrize(
    "bad", ["x\u0000", "\u0000", "a\u0007b", "tab\there", "line\nbreak", "del\u007f", "n\u0085el", "\ud800"]
)
def test_every_text_field_rejects_control_characters(bad: str) -> None:
    for model, doc, path in _text_cases():
        assert path in _error_locs(model, _with(doc, path, bad)), (model.__name__, path, bad)


def test_batch_with_one_nul_city_is_rejected_whole() -> None:
    bad = _with(SELL, ("location", "city"), "x\u0000")
    ok = {**SELL, "client_order_id": "s2"}
    locs = _error_locs(BatchIn, {"orders": [{**ok, "side": "SELL"}, {**bad, "side": "SELL"}]})
    assert ("orders", 1, "SELL", "location", "city") in locs


def test_text_is_nfc_normalised_and_bounded() -> None:
    a = AvailabilityIn.model_validate(
        _with(SELL, ("location", "city"), "Re\u0301union")
    )  # e + combining acute
    assert a.location.city == "R\u00e9union"
    a = AvailabilityIn.model_validate(
        _with(SELL, ("location", "city"), "\u0905\u0939\u092e\u0926\u093e\u092c\u093e\u0926")
    )
    assert a.location.city == "अहमदाबाद"  # Devanagari is fine; so are ZWJ/ZWNJ (format, not control)
    a = AvailabilityIn.model_validate(_with(SELL, ("location", "district"), "\u0915\u094d\u200d\u0937"))
    assert a.location.district == "\u0915\u094d\u200d\u0937"
    assert ("location", "city") in _error_locs(AvailabilityIn, _with(SELL, ("location", "city"), "x" * 101))
    # U+0958 is 1 code point but 2 in NFC (a composition exclusion): the bound applies after normalising
    assert ("location", "city") in _error_locs(
        AvailabilityIn, _with(SELL, ("location", "city"), "\u0958" * 60)
    )


@pytest.mark.parametrize(
    ("model", "doc", "path"),
    [
        (AvailabilityIn, SELL, ("quantity", "value")),
        (AvailabilityIn, SELL, ("price_paise_per_kg",)),
        (AvailabilityIn, SELL, ("location", "lat")),
        (AvailabilityIn, SELL, ("location", "lon")),
        (AvailabilityIn, SELL, ("quality", "micronaire")),
        (AvailabilityIn, {**SELL, "min_order": {"value": 1, "unit": "tonne"}}, ("min_order", "value")),
        (AvailabilityIn, {**SELL, "valid_until": 10**13}, ("valid_until",)),
        (RequirementIn, BUY, ("max_price_paise_per_kg",)),
        (RequirementIn, BUY, ("max_distance_km",)),
        (RequirementIn, BUY, ("quantity", "value")),
        (RequirementIn, BUY, ("location", "lat")),
        (RequirementIn, BUY, ("quality_ranges", "micronaire", "min")),
        (RequirementIn, BUY, ("quality_target", "micronaire")),
        (AmendIn, {"price_paise_per_kg": 7100}, ("price_paise_per_kg",)),
        (AmendIn, {"quantity": {"value": 2, "unit": "tonne"}}, ("quantity", "value")),
    ],
)
@pytest.mark.parametrize("bad", [True, False, "7", "21.5"])
def test_numbers_are_strict(model: type[BaseModel], doc: dict, path: tuple, bad: object) -> None:
    assert model.model_validate(doc)  # the good document passes
    locs = _error_locs(model, _with(doc, path, bad))
    assert any(loc[: len(path)] == path for loc in locs), locs


def test_strict_numbers_elsewhere_and_ints_for_floats() -> None:
    from gateway.schemas import AcceptIn, PartyIn, SearchIn

    assert ("hold_minutes",) in _error_locs(AcceptIn, {"hold_minutes": "30"})
    assert ("limit",) in _error_locs(SearchIn, {**SEARCH, "limit": True})
    assert ("credit_limit_paise",) in _error_locs(PartyIn, {"party_id": "P", "credit_limit_paise": "5"})
    assert ("sanctioned",) in _error_locs(PartyIn, {"party_id": "P", "sanctioned": "yes"})
    assert ("allow_partial",) in _error_locs(AvailabilityIn, {**SELL, "allow_partial": 1})
    assert ("price_paise_per_kg",) in _error_locs(AvailabilityIn, {**SELL, "price_paise_per_kg": 7000.5})
    r = RequirementIn.model_validate(_with(_with(BUY, ("location", "lat"), 21), ("max_distance_km",), 250))
    assert (r.location.lat, r.max_distance_km) == (21.0, 250.0)
    first = BatchIn.model_validate_json(json.dumps({"orders": [{**SELL, "side": "SELL"}]})).orders[0]
    assert isinstance(first, AvailabilityIn) and first.price_paise_per_kg == 7000


def test_units_follow_the_commodity_spec() -> None:
    soy = {**SELL, "commodity": "soybean", "quality": {"oil_pct": 18.0}}
    assert ("quantity",) in _error_locs(AvailabilityIn, _with(soy, ("quantity", "unit"), "bale"))
    assert ("min_order",) in _error_locs(AvailabilityIn, {**soy, "min_order": {"value": 1, "unit": "candy"}})
    assert ("quantity",) in _error_locs(
        RequirementIn,
        {
            **BUY,
            "commodity": "wheat",
            "quality_ranges": {},
            "quality_target": {},
            "quantity": {"value": 2, "unit": "bale"},
        },
    )
    with pytest.raises(ValidationError, match="soybean is traded in kg, quintal, tonne"):
        AvailabilityIn.model_validate(_with(soy, ("quantity", "unit"), "bale"))
    assert AvailabilityIn.model_validate(_with(soy, ("quantity", "unit"), "quintal")).quantity.kg() == 1000
    assert AvailabilityIn.model_validate(_with(SELL, ("quantity", "unit"), "candy")).quantity.kg() == 3556
    # amend and accept name an id whose shard tells the commodity
    amend = AmendIn.model_validate({"quantity": {"value": 2, "unit": "bale"}})
    assert amend.to_command(1, "P", "O-IN-GJ.cotton-7").quantity_kg == 340
    from fastapi.exceptions import RequestValidationError

    with pytest.raises(RequestValidationError):
        amend.to_command(1, "P", "O-IN-MP.soybean-7")
    from gateway.schemas import AcceptIn

    with pytest.raises(RequestValidationError):
        AcceptIn.model_validate({"quantity": {"value": 1, "unit": "bale"}}).to_command(
            1, "B", "P-IN-MP.wheat-3"
        )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("quality_ranges", "micronaire"), {"min": -1e308, "max": 1e308}),
        (("quality_ranges", "micronaire"), {"min": 3.0, "max": 1e308}),
        (("quality_ranges", "staple_length_mm"), {"min": 28.0, "max": 60.0}),
        (("quality_ranges", "trash_pct"), {"min": -1.0, "max": 4.0}),
        (("quality_target", "micronaire"), 9.0),
    ],
)
def test_quality_ranges_lie_within_the_parameter_range(path: tuple, value: object) -> None:
    locs = _error_locs(RequirementIn, _with(BUY, path, value))
    assert path[:1] in locs or path in locs, locs


def test_quality_values_checked_at_the_edge() -> None:
    assert ("quality",) in _error_locs(AvailabilityIn, _with(SELL, ("quality", "micronaire"), 1e308))
    assert ("quality",) in _error_locs(AvailabilityIn, _with(SELL, ("quality", "staple_length_mm"), -3.0))
    ok = AvailabilityIn.model_validate(
        _with(
            SELL,
            ("quality",),
            {
                "staple_length_mm": 37.5,
                "micronaire": 2.8,
                "strength_gtex": 42.0,
                "uniformity_pct": 92.0,
                "trash_pct": 18.0,
                "moisture_pct": 12.0,
            },
        )
    )
    assert ok.quality["staple_length_mm"] == 37.5  # extra-long staple (Suvin) is a real cotton


def test_point_must_lie_in_its_region() -> None:
    with pytest.raises(ValidationError, match=r"outside IN-GJ \(Gujarat\)") as ei:
        AvailabilityIn.model_validate(_with(SELL, ("location", "lat"), -5.0))
    assert ("location",) in {tuple(e["loc"]) for e in ei.value.errors()}
    assert ("location",) in _error_locs(
        RequirementIn, _with(BUY, ("location",), {"lat": 28.6, "lon": 77.2, "region": "IN-GJ"})
    )
    # old code IN-TG is read as IN-TS and Hyderabad lies in Telangana's box
    r = RequirementIn.model_validate(
        _with(BUY, ("location",), {"lat": 17.39, "lon": 78.49, "region": "IN-TG"})
    )
    assert r.location.region == "IN-TS"
    # within the 0.5 degree margin of the box (a border village) is accepted
    assert AvailabilityIn.model_validate(_with(SELL, ("location", "lat"), 24.9)).location.lat == 24.9
    # regions without a box (outside India) take any valid point
    assert AvailabilityIn.model_validate(
        _with(SELL, ("location",), {"lat": -33.9, "lon": 18.4, "region": "ZA-WC"})
    )


async def _drive(
    app: object, chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[list[dict], int]:
    """Run one POST through an ASGI app, feeding ``chunks`` as the body; returns the sent messages
    and how many chunks the app pulled."""
    pulled = {"n": 0}

    async def receive() -> dict:
        i = pulled["n"]
        pulled["n"] += 1
        if i < len(chunks):
            return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}
        await asyncio.sleep(3600)  # a client that sends nothing more
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *(headers or [])],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("t", 80),
        "client": ("c", 1),
        "root_path": "",
    }
    await asyncio.wait_for(app(scope, receive, send), 5)  # type: ignore[operator]
    return sent, pulled["n"]


async def test_body_limit_counts_streamed_bytes() -> None:
    from gateway.edge.body_limit import BodyLimitMiddleware

    app = FastAPI()
    problems.install(app)
    seen: list[int] = []

    @app.post("/x")
    async def x(body: dict) -> dict:
        seen.append(1)
        return {"ok": True}

    limited = BodyLimitMiddleware(app, max_bytes=1000)
    chunks = [b"[" + b" " * 99] + [b" " * 100] * 199  # 20,000 bytes, no Content-Length (chunked)
    sent, pulled = await _drive(limited, chunks)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert start["status"] == 413 and (b"content-type", b"application/problem+json") in start["headers"]
    assert body["type"] == "urn:tradedesk:problem:payload-too-large"
    assert [m["type"] for m in sent].count("http.response.start") == 1
    assert pulled == 11 and not seen  # stopped at the chunk that passed 1000 bytes; the route never ran
    # declared too large: refused before reading
    sent, pulled = await _drive(limited, chunks, [(b"content-length", b"20000")])
    assert sent[0]["status"] == 413 and pulled == 0
    # at the limit: passes
    sent, _ = await _drive(limited, [b'{"a": "' + b"x" * 990 + b'"}'])
    assert sent[0]["status"] == 200 and seen == [1]
