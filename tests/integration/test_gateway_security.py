"""Security of the gateway over the real runtime (Ray, PostgreSQL, Redis), issue 10 defects 3-5:

- a PRIVATE availability visible only to SEC-X never reaches SEC-Y on any stream channel (live or
  replayed from PostgreSQL) nor in the public trades of the market-data API;
- revoking a key closes its open WebSockets within 2 s on every gateway process and invalidates
  every process's key cache;
- a fresh API token never enters the idempotency store; the embedded Redis and PostgreSQL keep
  their data (and sockets) in 0700 directories.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration

SELLER, BUYER_X, BUYER_Y = "SEC-S", "SEC-X", "SEC-Y"


def _ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/stream"


class Recorder:
    """A WebSocket subscribed to every channel of a shard, recording each message it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.msgs: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with_close = websockets.exceptions.ConnectionClosed
        try:
            async for raw in self.ws:
                self.msgs.append(json.loads(raw))
        except with_close:
            return

    async def wait_for(self, pred: Any, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.msgs:
                if pred(m):
                    return m
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching message in {self.msgs[-20:]}")

    def events(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.msgs if m.get("op") == "event" and m["channel"] == channel]


async def _subscribe_all(ws: Any, shard: str, from_seq: int | None = None) -> None:
    for ch in ("book", "trades", "mine"):
        await ws.send(json.dumps({"op": "subscribe", "channel": ch, "shard_id": shard, "from_seq": from_seq}))


def _strings(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_strings(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_strings(v) for v in obj)) if obj else set()
    return {obj} if isinstance(obj, str) else set()


def _mentions(msg: dict[str, Any], ids: set[str]) -> bool:
    return bool(_strings(msg.get("payload")) & ids)


@pytest.fixture(scope="module")
def private_deal(gw: Gateway) -> dict[str, Any]:
    """Run the scenario once: a PRIVATE availability for SEC-X is amended, allocated to SEC-X,
    proposed/reserved/released, proposed/reserved/confirmed and cancelled; then a PUBLIC marker
    availability trades with SEC-Y and is cancelled. Returns what each viewer's sockets received."""
    tokens = {p: gw.party(p, [r], kyc_status="VERIFIED") for p, r in
              ((SELLER, "seller"), (BUYER_X, "buyer"), (BUYER_Y, "buyer"))}  # fmt: skip
    region = unique_region()
    shard = f"{region}.cotton"
    h = {p: {"Authorization": f"Bearer {t}"} for p, t in tokens.items()}
    out: dict[str, Any] = {"region": region, "shard": shard, "tokens": tokens}

    async def run() -> None:
        url = _ws_url(gw.base)
        async with (
            httpx.AsyncClient(base_url=gw.base, timeout=30) as http,
            websockets.connect(url, additional_headers=h[BUYER_X]) as wsx,
            websockets.connect(url, additional_headers=h[BUYER_Y]) as wsy,
            websockets.connect(url, additional_headers={"Authorization": f"Bearer {gw.admin}"}) as wsa,
        ):
            rx, ry, ra = Recorder(wsx), Recorder(wsy), Recorder(wsa)
            for ws, rec in ((wsx, rx), (wsy, ry)):
                await _subscribe_all(ws, shard)
                await rec.wait_for(lambda m: m.get("op") == "subscribed" and m["channel"] == "mine")
            for ch in ("book", "trades"):
                await wsa.send(json.dumps({"op": "subscribe", "channel": ch, "shard_id": shard}))
            await ra.wait_for(lambda m: m.get("op") == "subscribed" and m["channel"] == "trades")

            async def post(who: str, path: str, body: Any = None) -> dict[str, Any]:
                r = await http.post(path, json=body, headers=h[who])
                assert r.status_code in (200, 201), r.text
                return r.json()

            priv = await post(SELLER, "/v1/orders/availabilities", availability(
                "priv", region, price=7000, qty=10, visibility="PRIVATE", allow_list=[BUYER_X]))  # fmt: skip
            pid = priv["order_id"]
            await post(SELLER, f"/v1/orders/{pid}/amend", {"price_paise_per_kg": 6900})
            direct = await post(
                BUYER_X, "/v1/orders/requirements", requirement("x1", region, price=6950, qty=2)
            )
            assert [a["sell_order_id"] for a in direct["allocations"]] == [pid]
            neg = await post(BUYER_X, "/v1/orders/requirements",
                             requirement("x2", region, price=6950, qty=1, intent="NEGOTIATE"))  # fmt: skip
            rid = (await post(BUYER_X, f"/v1/proposals/{neg['proposals'][0]['proposal_id']}/accept"))[
                "reservation"
            ]["reservation_id"]
            await post(SELLER, f"/v1/reservations/{rid}/release")
            neg2 = await post(BUYER_X, "/v1/orders/requirements",
                              requirement("x3", region, price=6950, qty=1, intent="NEGOTIATE"))  # fmt: skip
            rid2 = (await post(BUYER_X, f"/v1/proposals/{neg2['proposals'][0]['proposal_id']}/accept"))[
                "reservation"
            ]["reservation_id"]
            confirmed = await post(SELLER, f"/v1/reservations/{rid2}/confirm")
            await post(SELLER, f"/v1/orders/{pid}/cancel")
            # the public marker: traded by SEC-Y, then cancelled (the last event of the shard)
            marker = await post(
                SELLER, "/v1/orders/availabilities", availability("pub", region, price=7100, qty=5)
            )
            mid = marker["order_id"]
            buy_y = await post(
                BUYER_Y, "/v1/orders/requirements", requirement("y1", region, price=7200, qty=1)
            )
            assert [a["sell_order_id"] for a in buy_y["allocations"]] == [mid]
            await post(SELLER, f"/v1/orders/{mid}/cancel")

            def last(m: dict[str, Any]) -> bool:
                return m.get("type") == "CANCELLED" and m["payload"].get("order_id") == mid

            for rec in (rx, ry, ra):
                await rec.wait_for(lambda m: last(m) and m["channel"] == "book")
            await ry.wait_for(lambda m: m.get("type") == "ALLOCATED" and m["channel"] == "mine")
            out.update(
                priv_id=pid,
                marker_id=mid,
                private_ids={
                    pid,
                    direct["allocations"][0]["allocation_id"],
                    rid,
                    rid2,
                    confirmed["allocation"]["allocation_id"],
                },  # fmt: skip
                x=rx.msgs,
                y=ry.msgs,
                admin=ra.msgs,
            )
            # the same after a reconnect: replay from PostgreSQL (from_seq=0) is filtered too
            async with websockets.connect(url, additional_headers=h[BUYER_Y]) as wsy2:
                ry2 = Recorder(wsy2)
                await _subscribe_all(wsy2, shard, from_seq=0)
                await ry2.wait_for(lambda m: last(m) and m["channel"] == "book")
                await ry2.wait_for(lambda m: m.get("type") == "ALLOCATED" and m["channel"] == "trades")
                out["y_replay"] = ry2.msgs
            async with websockets.connect(url, additional_headers=h[BUYER_X]) as wsx2:
                rx2 = Recorder(wsx2)
                await _subscribe_all(wsx2, shard, from_seq=0)
                await rx2.wait_for(lambda m: last(m) and m["channel"] == "book")
                out["x_replay"] = rx2.msgs

    asyncio.run(run())
    return out


def _types_of(msgs: list[dict[str, Any]], channel: str, order_id: str) -> list[str]:
    return [
        m["type"]
        for m in msgs
        if m.get("op") == "event" and m["channel"] == channel and _mentions(m, {order_id})
    ]


@pytest.mark.parametrize("viewer", ["y", "y_replay", "admin"])
def test_book_channel_hides_private_listing(private_deal: dict[str, Any], viewer: str) -> None:
    msgs = private_deal[viewer]
    book = [m for m in msgs if m.get("op") == "event" and m["channel"] == "book"]
    assert [m for m in book if _mentions(m, private_deal["private_ids"])] == []
    # the public marker is seen whole: accepted, traded, cancelled
    assert _types_of(msgs, "book", private_deal["marker_id"]) == ["ORDER_ACCEPTED", "ALLOCATED", "CANCELLED"]


@pytest.mark.parametrize("viewer", ["x", "x_replay"])
def test_book_channel_shows_private_listing_to_allowed_party(
    private_deal: dict[str, Any], viewer: str
) -> None:
    ids = private_deal["private_ids"]
    types = [m["type"] for m in private_deal[viewer] if m.get("channel") == "book" and _mentions(m, ids)]
    assert types == [
        "ORDER_ACCEPTED", "AMENDED", "ALLOCATED", "RESERVED",
        "RELEASED", "RESERVED", "CONFIRMED", "CANCELLED",
    ]  # fmt: skip
    accepted = next(m for m in private_deal[viewer] if m.get("type") == "ORDER_ACCEPTED"
                    and m["payload"]["order"]["order_id"] == private_deal["priv_id"])  # fmt: skip
    assert "allow_list" not in accepted["payload"]["order"] and "party_id" not in accepted["payload"]["order"]


@pytest.mark.parametrize("viewer", ["y", "y_replay", "admin"])
def test_trades_channel_hides_private_deal(private_deal: dict[str, Any], viewer: str) -> None:
    trades = [m for m in private_deal[viewer] if m.get("op") == "event" and m["channel"] == "trades"]
    assert [(m["type"], m["payload"]) for m in trades] == [
        ("ALLOCATED", {"quantity_kg": 1000, "price": 7100})
    ]


def test_trades_channel_shows_private_deal_to_its_party(private_deal: dict[str, Any]) -> None:
    trades = [m for m in private_deal["x"] if m.get("op") == "event" and m["channel"] == "trades"]
    assert [(m["type"], m["payload"]) for m in trades] == [
        ("ALLOCATED", {"quantity_kg": 2000, "price": 6900}),
        ("CONFIRMED", {"quantity_kg": 1000, "price": 6900}),
        ("ALLOCATED", {"quantity_kg": 1000, "price": 7100}),
    ]


def test_mine_channel_only_own_events(private_deal: dict[str, Any]) -> None:
    mine_y = [m for m in private_deal["y"] if m.get("op") == "event" and m["channel"] == "mine"]
    assert [m for m in mine_y if _mentions(m, private_deal["private_ids"])] == []
    assert [m["type"] for m in mine_y] == ["ORDER_ACCEPTED", "ALLOCATED"]
    assert all(m["payload"].get("buyer_id", BUYER_Y) == BUYER_Y for m in mine_y)
    mine_x = [m for m in private_deal["x"] if m.get("op") == "event" and m["channel"] == "mine"]
    # SEC-X's own orders and deals, including the RELEASED notice of its reservation
    assert "RELEASED" in [m["type"] for m in mine_x]
    assert {m["type"] for m in mine_x} >= {"ORDER_ACCEPTED", "ALLOCATED", "PROPOSED", "RESERVED", "CONFIRMED"}


def test_market_trades_hide_private_deal(gw: Gateway, private_deal: dict[str, Any]) -> None:
    path = f"/v1/market/{private_deal['region']}/cotton/trades"
    tokens = private_deal["tokens"]

    def trades(token: str) -> list[tuple[int, int]]:
        with gw.client(token) as c:
            r = c.get(path)
            assert r.status_code == 200, r.text
            return [(t["quantity_kg"], t["price"]) for t in r.json()["items"]]

    public = [(1000, 7100)]
    assert trades(tokens[BUYER_Y]) == public
    assert trades(gw.admin) == public
    assert trades(tokens[BUYER_X]) == [(1000, 7100), (1000, 6900), (2000, 6900)]
    assert trades(tokens[SELLER]) == [(1000, 7100), (1000, 6900), (2000, 6900)]
    with gw.client(tokens[BUYER_X]) as c:
        assert [(t["quantity_kg"], t["price"]) for t in c.get(path, params={"limit": 2}).json()["items"]] == [
            (1000, 7100),
            (1000, 6900),
        ]
    with gw.client(tokens[BUYER_Y]) as c:  # a limit smaller than the private deals still finds the public one
        assert [
            (t["quantity_kg"], t["price"]) for t in c.get(path, params={"limit": 1}).json()["items"]
        ] == public


# -- revocation -------------------------------------------------------------------------------------


def test_revocation_closes_sockets_on_every_gateway(gw: Gateway, pg_dsn: str) -> None:
    from gateway.app import ServerThread, create_app
    from tests.conftest import REDIS_URL

    # a second gateway process of the same deployment, with a long key cache: only the notice can
    # invalidate it within the test
    app2 = create_app(
        gw.settings,
        pg_dsn,
        REDIS_URL,
        key_prefix=gw.prefix,
        directory=gw.runtime.directory,
        auth_cache_ttl_s=300,
    )
    srv2 = ServerThread(app2)
    base2 = srv2.start()
    try:
        token = gw.party("SEC-R", ["buyer"], kyc_status="VERIFIED")
        key_id = token.split("_")[1]
        shard = f"{unique_region()}.cotton"
        hdr = {"Authorization": f"Bearer {token}"}

        async def run() -> None:
            async with (
                websockets.connect(_ws_url(gw.base), additional_headers=hdr) as ws1,
                websockets.connect(_ws_url(base2), additional_headers=hdr) as ws2,
                httpx.AsyncClient(timeout=30) as http,
            ):
                recs = [Recorder(ws1), Recorder(ws2)]
                for ws, rec in zip((ws1, ws2), recs, strict=True):
                    await ws.send(json.dumps({"op": "subscribe", "channel": "book", "shard_id": shard}))
                    await rec.wait_for(lambda m: m.get("op") == "subscribed")
                assert (await http.get(f"{base2}/v1/orders", headers=hdr)).status_code == 200  # cached now
                r = await http.post(
                    f"{gw.base}/v1/admin/api-keys/{key_id}/revoke",
                    headers={"Authorization": f"Bearer {gw.admin}"},
                )
                assert r.status_code == 200, r.text
                t0 = time.monotonic()
                for rec in recs:
                    await asyncio.wait_for(rec.task, timeout=2.0)
                elapsed = time.monotonic() - t0
                assert elapsed < 2.0
                for ws, rec in zip((ws1, ws2), recs, strict=True):
                    assert ws.close_code == 4401, ws.close_code
                    assert rec.msgs[-1]["op"] == "error" and rec.msgs[-1]["type"].endswith("unauthenticated")
                for base in (gw.base, base2):
                    assert (await http.get(f"{base}/v1/orders", headers=hdr)).status_code == 401
                # a new socket with the revoked key is refused
                async with websockets.connect(_ws_url(base2), additional_headers=hdr) as ws3:
                    msg = json.loads(await ws3.recv())
                    assert msg["op"] == "error" and msg["type"].endswith("unauthenticated")

        asyncio.run(run())
    finally:
        srv2.stop()


# -- secrets at rest ----------------------------------------------------------------------------------


def test_api_key_token_never_enters_idempotency_store(gw: Gateway) -> None:
    import redis

    from tests.conftest import REDIS_URL

    gw.party("SEC-I", ["buyer"], kyc_status="VERIFIED")
    admin_kid = gw.admin.split("_")[1]
    idem = f"key-{time.time_ns()}"
    body = {"party_id": "SEC-I", "roles": ["buyer"], "label": "idem"}
    with gw.client(gw.admin) as a:
        r1 = a.post("/v1/admin/api-keys", json=body, headers={"Idempotency-Key": idem})
        assert r1.status_code == 201, r1.text
        first = r1.json()
        token = first["token"]
        assert token.startswith(f"td_{first['key_id']}_") and first["token_shown_once"] is True
        # the record is stored right after the response is sent: wait for it
        rkey, deadline = f"{gw.prefix}idem:{admin_kid}:{idem}", time.monotonic() + 5
        raw = redis.Redis.from_url(REDIS_URL).get(rkey)
        while (raw is None or b'"pending"' in raw) and time.monotonic() < deadline:
            time.sleep(0.02)
            raw = redis.Redis.from_url(REDIS_URL).get(rkey)
        assert raw is not None
        assert token.encode() not in raw and token.split("_", 2)[2].encode() not in raw
        rec = json.loads(raw)
        assert rec["state"] == "done" and json.loads(rec["body"])["token"] is None
        r2 = a.post("/v1/admin/api-keys", json=body, headers={"Idempotency-Key": idem})
        assert r2.status_code == 201 and r2.headers["idempotent-replayed"] == "true"
        replay = r2.json()
        assert replay["key_id"] == first["key_id"] and replay["token"] is None
        assert replay["token_shown_once"] is True and token not in r2.text
    with gw.client(token) as c:  # the token issued the first time works
        assert c.get("/v1/orders").status_code == 200


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_embedded_redis_private_socket_and_files(tmp_path: Path) -> None:
    import redis

    from gateway.embedded_redis import EmbeddedRedis

    d = tmp_path / "redis"
    srv = EmbeddedRedis(d)
    url = srv.start()
    try:
        assert url.startswith("unix://") and "@" not in url and str(d.resolve()) in url
        r = redis.Redis.from_url(url)
        r.set("td:probe", "x")
        assert r.get("td:probe") == b"x"
        # no TCP listener at all
        assert int(str(r.config_get("port")["port"])) == 0
        assert _mode(d) == 0o700
        files = [p for p in d.rglob("*")]
        assert any("appendonly" in p.name for p in files), files
        for p in files:
            assert _mode(p) & 0o077 == 0, (p, oct(_mode(p)))
        # reuse: a second start finds the running server and returns the same URL
        assert EmbeddedRedis(d).start() == url
    finally:
        srv.stop()


def test_embedded_redis_tightens_existing_dir(tmp_path: Path) -> None:
    from gateway.embedded_redis import EmbeddedRedis

    d = tmp_path / "r"
    d.mkdir(mode=0o755)
    (d / "redis.log").write_text("")  # left by an older version, world-readable
    os.chmod(d / "redis.log", 0o644)
    srv = EmbeddedRedis(d)
    srv.start()
    try:
        assert _mode(d) == 0o700 and _mode(d / "redis.log") == 0o600
    finally:
        srv.stop()


def test_embedded_postgres_data_dir_private() -> None:
    import shutil
    import tempfile

    from persistence.embedded import embedded_dsn, stop_embedded

    # not under pytest's tmp root: run as root, pgserver's own user must traverse the path, and a
    # concurrent pytest session resets that root to 0700
    base = Path(tempfile.mkdtemp(prefix="tdpg-"))
    pgdata = base / "pgdata"
    try:
        dsn = embedded_dsn(pgdata)
        try:
            assert _mode(pgdata) == 0o700
            assert "host=" not in dsn or str(pgdata) in dsn  # the socket lives in the private dir
        finally:
            stop_embedded(pgdata, delete=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
