"""WebSocket /v1/stream over the real gateway: an allocation event arrives on the buyer's own
channel and on the public trades channel, and a reconnect with ``from_seq`` replays what was missed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.conftest import unique_region
from tests.integration.gateway_server import Gateway, availability, requirement

pytestmark = pytest.mark.integration


async def _until(ws: Any, pred: Any, timeout: float = 15.0) -> dict[str, Any]:
    async def loop() -> dict[str, Any]:
        while True:
            msg = json.loads(await ws.recv())
            if pred(msg):
                return msg

    return await asyncio.wait_for(loop(), timeout)


async def test_allocation_event_and_resume(gw: Gateway) -> None:
    seller = gw.party("WS-S", ["seller"], kyc_status="VERIFIED")
    buyer = gw.party("WS-B", ["buyer"], kyc_status="VERIFIED")
    region = unique_region()
    shard = f"{region}.cotton"
    url = gw.base.replace("http://", "ws://") + "/v1/stream"
    hs = {"Authorization": f"Bearer {seller}"}
    hb = {"Authorization": f"Bearer {buyer}"}

    async with httpx.AsyncClient(base_url=gw.base, timeout=30) as http:
        r = await http.post("/v1/orders/availabilities", json=availability("w1", region, qty=20), headers=hs)
        assert r.status_code == 201

        # unauthenticated connections are refused
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"op": "auth", "token": "td_bad_bad"}))
            msg = json.loads(await ws.recv())
            assert msg["op"] == "error" and msg["type"].endswith("unauthenticated")

        async with websockets.connect(url, additional_headers=hb) as ws:
            assert json.loads(await ws.recv())["op"] == "welcome"
            await ws.send(json.dumps({"op": "ping"}))
            await _until(ws, lambda m: m["op"] == "pong")
            for ch in ("mine", "trades"):
                await ws.send(json.dumps({"op": "subscribe", "channel": ch, "shard_id": shard}))
                await _until(ws, lambda m, ch=ch: m["op"] == "subscribed" and m["channel"] == ch)
            await ws.send(json.dumps({"op": "subscribe", "channel": "nope", "shard_id": shard}))
            assert (await _until(ws, lambda m: m["op"] == "error"))["type"].endswith("validation-error")
            r = await http.post("/v1/orders/requirements", json=requirement("wr1", region, qty=2), headers=hb)
            alloc = r.json()["allocations"][0]
            got = await _until(ws, lambda m: m.get("type") == "ALLOCATED" and m["channel"] == "mine")
            assert got["payload"]["allocation_id"] == alloc["allocation_id"] and got["shard_id"] == shard
            trade = await _until(ws, lambda m: m.get("type") == "ALLOCATED" and m["channel"] == "trades")
            assert trade["payload"] == {"quantity_kg": 2000, "price": 7000}
            last_seq = got["seq"]

        # while disconnected: two more trades for this buyer
        for i in (2, 3):
            r = await http.post(
                "/v1/orders/requirements", json=requirement(f"wr{i}", region, qty=1), headers=hb
            )
            assert r.status_code == 201
        missed = {r.json()["allocations"][0]["allocation_id"]}
        missed |= {
            a["allocation_id"]
            for a in (await http.get("/v1/allocations", headers=hb)).json()["items"]
            if a["allocation_id"] != alloc["allocation_id"]
        }

        async with websockets.connect(url, additional_headers=hb) as ws:
            await ws.recv()
            await ws.send(
                json.dumps({"op": "subscribe", "channel": "mine", "shard_id": shard, "from_seq": last_seq})
            )
            seen: list[dict[str, Any]] = []
            while {m["payload"]["allocation_id"] for m in seen if m.get("type") == "ALLOCATED"} != missed:
                seen.append(await _until(ws, lambda m: m["op"] == "event"))
            seqs = [m["seq"] for m in seen]
            assert seqs == sorted(set(seqs)) and min(seqs) > last_seq
            assert all(m["type"] != "ALLOCATED" or m["payload"]["buyer_id"] == "WS-B" for m in seen)
            # live again after the replay
            r = await http.post("/v1/orders/requirements", json=requirement("wr4", region, qty=1), headers=hb)
            live = await _until(ws, lambda m: m.get("type") == "ALLOCATED")
            assert live["payload"]["allocation_id"] == r.json()["allocations"][0]["allocation_id"]
            assert live["seq"] > max(seqs)
