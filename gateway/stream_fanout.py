"""Fan-out of committed events to this process's WebSocket clients (``/v1/stream``,
:mod:`gateway.stream`): one Redis pub/sub hub per process, and per connection its subscriptions,
the visibility filter of each channel, the replay from PostgreSQL and the gap filling.

The hub subscribes to ``td:events:<shard_id>`` while at least one of its clients follows that shard
and follows ``td:keys:revoked``: on a notice it closes the key's sockets with close code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import WebSocket

from actors.core.ids import events_channel, key_revocations_channel
from gateway.auth import Authenticator, Principal
from gateway.problems import problem_type
from gateway.visibility import AccessBook
from persistence.event_store import STORED_PAYLOAD_SQL, payload_dict, stored_payload

log = logging.getLogger("tradedesk.gateway")

QUEUE_MAX = 10_000
REVOKED_CLOSE_CODE = 4401
REPLAY_LIMIT = 50_000
_PARTY_KEYS = ("party_id", "buyer_id", "seller_id", "linked_parties", "allow_list", "risk")
_BOOK_ORDER_KEYS = (
    "order_id",
    "side",
    "price",
    "open_kg",
    "quantity_kg",
    "quality",
    "region",
    "city",
    "district",
)
_BOOK_TYPES = {
    "ORDER_ACCEPTED",
    "CANCELLED",
    "AMENDED",
    "EXPIRED",
    "ALLOCATED",
    "CONFIRMED",
    "RESERVED",
    "RELEASED",
}
_TRADE_TYPES = {"ALLOCATED", "CONFIRMED"}


_channel = events_channel


class StreamHub:
    """Per-process Redis pub/sub fan-out to WebSocket connections, and the process's follower of
    API key revocation notices (``auth``: the process's :class:`~gateway.auth.Authenticator`)."""

    def __init__(self, gw: Any, auth: Authenticator | None = None) -> None:
        self.gw = gw
        self.auth = auth
        self.access = AccessBook(gw.pool)
        self.pubsub: Any = None
        self.subs: dict[str, set[Connection]] = {}
        self.conns: set[Connection] = set()
        self.clients = 0
        self._revocations = key_revocations_channel(gw.key_prefix)
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Follow revocation notices from now on (call once at start-up)."""
        async with self._lock:
            await self._ensure()
            await self.pubsub.subscribe(self._revocations)

    async def _ensure(self) -> None:
        if self.pubsub is None:
            self.pubsub = self.gw.redis.pubsub(ignore_subscribe_messages=True)
            self._task = asyncio.get_running_loop().create_task(self._listen())

    async def revoked(self, key_id: str) -> None:
        """A key was revoked (on any process): forget it and close its sockets (code 4401)."""
        if self.auth is not None:
            self.auth.forget(key_id)
        for conn in [c for c in self.conns if c.p.key_id == key_id]:  # in the background: a slow
            t = asyncio.get_running_loop().create_task(conn.close(REVOKED_CLOSE_CODE, "API key revoked"))
            self._closing.add(t)  # client must not hold up the fan-out
            t.add_done_callback(self._closing.discard)

    async def add(self, shard_id: str, conn: Connection) -> None:
        async with self._lock:
            await self._ensure()
            if shard_id not in self.subs:
                self.subs[shard_id] = set()
                await self.pubsub.subscribe(_channel(shard_id))
            self.subs[shard_id].add(conn)

    async def remove(self, shard_id: str, conn: Connection) -> None:
        async with self._lock:
            conns = self.subs.get(shard_id)
            if conns is None:
                return
            conns.discard(conn)
            if not conns:
                del self.subs[shard_id]
                with contextlib.suppress(Exception):
                    await self.pubsub.unsubscribe(_channel(shard_id))

    async def _listen(self) -> None:
        while True:
            try:
                if not self.pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None or msg.get("type") != "message":
                    continue
                ev = json.loads(msg["data"])
                if _text(msg.get("channel")) == self._revocations:
                    await self.revoked(str(ev.get("key_id")))
                    continue
                for conn in list(self.subs.get(ev.get("shard_id"), ())):
                    conn.push(ev)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis hiccup: keep serving, the gap filler repairs the feed
                log.warning("stream fan-out: %s", type(exc).__name__)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class _Sub:
    __slots__ = ("channel", "shard_id", "last_seq", "buffer", "replaying")

    def __init__(self, channel: str, shard_id: str, last_seq: int | None) -> None:
        self.channel = channel
        self.shard_id = shard_id
        self.last_seq = last_seq
        self.buffer: list[dict[str, Any]] = []
        self.replaying = last_seq is not None


class Connection:
    """One WebSocket client: its subscriptions, an outbound queue and ownership lookups."""

    def __init__(self, ws: WebSocket, hub: StreamHub, principal: Principal) -> None:
        self.ws = ws
        self.hub = hub
        self.p = principal
        self.subs: dict[tuple[str, str], _Sub] = {}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.overflow = False
        self.closed = False
        self._send_lock = asyncio.Lock()

    def push(self, ev: dict[str, Any]) -> None:
        try:
            self.inbox.put_nowait(ev)
        except asyncio.QueueFull:
            self.overflow = True

    async def send(self, msg: dict[str, Any]) -> None:
        async with self._send_lock:
            if not self.closed:
                await self.ws.send_text(json.dumps(msg, separators=(",", ":")))

    async def close(self, code: int, reason: str) -> None:
        """Tell the client why (an ``unauthenticated`` error), then close the socket with ``code``."""
        async with self._send_lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.send_text(json.dumps(_err("unauthenticated", reason)))
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason)

    # -- filtering ---------------------------------------------------------------------------------
    async def _mine(self, ev: dict[str, Any]) -> bool:
        """The event is about one of my orders (or names my party: rejections, deals)."""
        me = self.p.party_id
        if me is None:
            return False
        pl = ev.get("payload") or {}
        if ev["type"] == "ORDER_ACCEPTED":
            return (pl.get("order") or {}).get("party_id") == me
        if me in (pl.get("party_id"), pl.get("buyer_id"), pl.get("seller_id")):
            return True
        book = self.hub.access
        acc = await book.access(await book.orders_of(ev["type"], pl))
        return any(a.party_id == me for a in acc.values())

    async def _view(self, sub: _Sub, ev: dict[str, Any]) -> dict[str, Any] | None:
        typ = ev["type"]
        pl = ev.get("payload") or {}
        if sub.channel == "mine":
            if not await self._mine(ev):
                return None
            payload = pl
        else:
            if typ not in (_TRADE_TYPES if sub.channel == "trades" else _BOOK_TYPES):
                return None
            if not await self.hub.access.event_visible(typ, pl, self.p.party_id):
                return None
            if sub.channel == "trades":
                payload = {"quantity_kg": pl.get("quantity_kg"), "price": pl.get("price")}
            elif typ == "ORDER_ACCEPTED":
                o = pl.get("order") or {}
                payload = {"order": {k: o.get(k) for k in _BOOK_ORDER_KEYS}}
            else:
                payload = {k: v for k, v in pl.items() if k not in _PARTY_KEYS}
        return {
            "op": "event",
            "channel": sub.channel,
            "shard_id": sub.shard_id,
            "seq": ev["seq"],
            "type": typ,
            "ts": ev["ts"],
            "payload": payload,
        }

    async def _read(self, shard_id: str, after: int, before: int | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT seq, type, ts, {STORED_PAYLOAD_SQL} FROM events WHERE shard_id = $1 AND seq > $2"
        args: list[Any] = [shard_id, after]
        if before is not None:
            sql += " AND seq < $3"
            args.append(before)
        rows = await self.hub.gw.pool.fetch(sql + f" ORDER BY seq LIMIT {REPLAY_LIMIT}", *args)
        out = []
        for r in rows:
            out.append(
                {
                    "shard_id": shard_id,
                    "seq": r["seq"],
                    "type": r["type"],
                    "ts": r["ts"],
                    "payload": payload_dict(stored_payload(r["body"], r["payload_text"])),
                }
            )
        return out

    async def deliver(self, sub: _Sub, ev: dict[str, Any]) -> None:
        seq = int(ev["seq"])
        if sub.last_seq is not None and seq <= sub.last_seq:
            return
        if sub.last_seq is not None and seq > sub.last_seq + 1:  # missed live messages: fill from PG
            for old in await self._read(sub.shard_id, sub.last_seq, seq):
                await self._deliver_one(sub, old)
        await self._deliver_one(sub, ev)

    async def _deliver_one(self, sub: _Sub, ev: dict[str, Any]) -> None:
        sub.last_seq = int(ev["seq"])
        self.hub.access.learn(ev["type"], ev.get("payload") or {})
        msg = await self._view(sub, ev)
        if msg is not None:
            await self.out.put(msg)

    # -- subscription management -----------------------------------------------------------------
    async def subscribe(self, channel: str, shard_id: str, from_seq: int | None) -> None:
        key = (channel, shard_id)
        if key in self.subs:
            await self.unsubscribe(channel, shard_id)
        sub = _Sub(channel, shard_id, from_seq)
        self.subs[key] = sub
        await self.hub.add(shard_id, self)
        await self.out.put(
            {"op": "subscribed", "channel": channel, "shard_id": shard_id, "from_seq": from_seq}
        )
        if from_seq is not None:
            replay = await self._read(shard_id, from_seq)
            for ev in replay:
                await self._deliver_one(sub, ev)
            while sub.buffer:  # live events that arrived meanwhile; stay in replay mode until drained
                buffered, sub.buffer = sub.buffer, []
                for ev in buffered:
                    await self.deliver(sub, ev)
            sub.replaying = False

    async def unsubscribe(self, channel: str, shard_id: str) -> None:
        self.subs.pop((channel, shard_id), None)
        if not any(s.shard_id == shard_id for s in self.subs.values()):
            await self.hub.remove(shard_id, self)

    async def dispatch_loop(self) -> None:
        """Route live events from the hub to this connection's subscriptions."""
        while True:
            ev = await self.inbox.get()
            for sub in list(self.subs.values()):
                if sub.shard_id != ev.get("shard_id"):
                    continue
                if sub.replaying:
                    sub.buffer.append(ev)
                else:
                    await self.deliver(sub, ev)

    async def send_loop(self) -> None:
        while True:
            msg = await self.out.get()
            if msg is None:
                return
            await self.send(msg)


def _err(slug: str, detail: str) -> dict[str, Any]:
    return {"op": "error", "type": problem_type(slug), "detail": detail}
