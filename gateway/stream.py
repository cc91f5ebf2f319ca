"""WebSocket ``/v1/stream``: live book, trades and my own updates, with resume after reconnect.

Authenticate with ``Authorization: Bearer <key>`` on the upgrade request, or send
``{"op": "auth", "token": "<key>"}`` as the first message (within 10 s).

Client -> server (JSON text frames)::

    {"op": "subscribe", "channel": "book"|"trades"|"mine", "shard_id": "IN-GJ.cotton", "from_seq": 120}
    {"op": "unsubscribe", "channel": "trades", "shard_id": "IN-GJ.cotton"}
    {"op": "ping"}                       -> {"op": "pong", "ts": <epoch ms>}
    {"op": "pong"}                       (answer to the server's heartbeat {"op": "ping"})

Server -> client::

    {"op": "subscribed", "channel", "shard_id", "from_seq"}
    {"op": "event", "channel", "shard_id", "seq", "type", "ts", "payload"}
    {"op": "error", "type": <problem type>, "detail"}

Channels of a shard: ``book`` (order book changes, party ids and allow-lists removed), ``trades``
(``{quantity_kg, price}`` of each allocation), ``mine`` (every event about my orders, proposals,
reservations and allocations, including rejections of my commands). ``book`` and ``trades`` carry
only events whose orders the viewer may see, by the rule of depth and search
(``actors.core.visibility``): PUBLIC orders, and a PRIVATE one to its own party and the parties on
its allow-list (an event about several orders, e.g. a trade, when the viewer may see all of them).
Staff keys have no party and see PUBLIC orders only. Replays from PostgreSQL are filtered the same.

``seq`` is the shard's event sequence number: remember the last one and pass it as ``from_seq`` when
re-subscribing; the missed events are read from the PostgreSQL events table, then the live feed
continues without gaps or duplicates (a gap in the live feed is also filled from PostgreSQL).

Fan-out: each gateway process holds one Redis pub/sub connection and subscribes to
``td:events:<shard_id>`` while at least one of its clients follows that shard. The persistence actor
publishes only committed events. A client that cannot keep up (queue over 10,000 messages) is
disconnected with close code 1013.

Revocation: the same connection follows ``td:keys:revoked`` (``actors.core.ids``); on a notice the
process drops the key from its key cache and closes the key's sockets with close code 4401 after an
``unauthenticated`` error message. As a second line, each heartbeat re-checks the key in PostgreSQL.

The fan-out itself (the hub and each connection's subscriptions, filter and replay) is
:mod:`gateway.stream_fanout`; this module holds the route and the client messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gateway.auth import MARKET_DATA, Authenticator, Principal
from gateway.stream_fanout import QUEUE_MAX as QUEUE_MAX
from gateway.stream_fanout import REPLAY_LIMIT as REPLAY_LIMIT
from gateway.stream_fanout import REVOKED_CLOSE_CODE as REVOKED_CLOSE_CODE
from gateway.stream_fanout import Connection as Connection
from gateway.stream_fanout import StreamHub as StreamHub
from gateway.stream_fanout import _err

log = logging.getLogger("tradedesk.gateway")
router = APIRouter()

CHANNELS = ("book", "trades", "mine")
HEARTBEAT_S = 15.0


async def _authenticate(ws: WebSocket) -> Principal | None:
    auth = ws.app.state.auth
    h = ws.headers.get("authorization")
    token = h[7:].strip() if h and h[:7].lower() == "bearer " else ws.headers.get("x-api-key")
    if token:
        return await auth.resolve(token)
    try:
        first = json.loads(await asyncio.wait_for(ws.receive_text(), timeout=10))
    except Exception:
        return None
    if isinstance(first, dict) and first.get("op") == "auth" and isinstance(first.get("token"), str):
        return await auth.resolve(first["token"])
    return None


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    await ws.accept()
    p = await _authenticate(ws)
    if p is None or not p.has(*MARKET_DATA):
        await ws.send_text(json.dumps(_err("unauthenticated", "send a valid API key")))
        await ws.close(code=1008)
        return
    hub: StreamHub = ws.app.state.hub
    conn = Connection(ws, hub, p)
    hub.clients += 1
    hub.conns.add(conn)
    tasks = [
        asyncio.create_task(conn.dispatch_loop()),
        asyncio.create_task(conn.send_loop()),
        asyncio.create_task(_heartbeat(conn)),
    ]
    await conn.out.put(
        {"op": "welcome", "key_id": p.key_id, "party_id": p.party_id, "heartbeat_s": HEARTBEAT_S}
    )
    try:
        while True:
            done = [t for t in tasks if t.done()]
            if done or conn.overflow or conn.closed:
                if conn.overflow:
                    await ws.close(code=1013)
                break
            try:
                raw = await ws.receive_text()
            except WebSocketDisconnect:
                break
            await _handle(conn, raw)
    except WebSocketDisconnect:
        pass
    except Exception as exc:
        log.warning("stream connection ended: %s", type(exc).__name__)
    finally:
        hub.clients -= 1
        hub.conns.discard(conn)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for ch, sid in list(conn.subs):
            with contextlib.suppress(Exception):
                await conn.unsubscribe(ch, sid)


async def _heartbeat(conn: Connection) -> None:
    auth: Authenticator | None = conn.hub.auth
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        if auth is not None and await auth.is_revoked(conn.p.key_id):  # a lost revocation notice
            await conn.hub.revoked(conn.p.key_id)
            return
        await conn.out.put({"op": "ping", "ts": int(time.time() * 1000)})


async def _handle(conn: Connection, raw: str) -> None:
    try:
        msg = json.loads(raw)
    except ValueError:
        await conn.out.put(_err("malformed-request", "messages are JSON objects"))
        return
    if not isinstance(msg, dict):
        await conn.out.put(_err("malformed-request", "messages are JSON objects"))
        return
    op = msg.get("op")
    if op == "ping":
        await conn.out.put({"op": "pong", "ts": int(time.time() * 1000)})
        return
    if op in ("pong", "auth"):
        return
    if op not in ("subscribe", "unsubscribe"):
        await conn.out.put(_err("validation-error", "op must be subscribe, unsubscribe, ping or pong"))
        return
    channel, shard_id, from_seq = msg.get("channel"), msg.get("shard_id"), msg.get("from_seq")
    if channel not in CHANNELS or not isinstance(shard_id, str) or not 3 <= len(shard_id) <= 60:
        await conn.out.put(
            _err("validation-error", f"channel must be one of {CHANNELS} and shard_id a shard id")
        )
        return
    if from_seq is not None and (isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 0):
        await conn.out.put(_err("validation-error", "from_seq must be a non-negative integer"))
        return
    if channel == "mine" and conn.p.party_id is None:
        await conn.out.put(_err("forbidden", "the mine channel needs a party API key"))
        return
    if op == "subscribe":
        if len(conn.subs) >= 100:
            await conn.out.put(_err("forbidden", "at most 100 subscriptions per connection"))
            return
        await conn.subscribe(channel, shard_id, from_seq)
    else:
        await conn.unsubscribe(channel, shard_id)
        await conn.out.put({"op": "unsubscribed", "channel": channel, "shard_id": shard_id})
