"""The visibility rule applied to events and trades read by the gateway (streams, market trades).

The rule itself is :func:`actors.core.visibility.visible_to` (the one used by matching, depth and
search). An event or trade refers to orders by id; :class:`AccessBook` learns each order's
``(party, visibility, allow-list)`` from ``ORDER_ACCEPTED`` events, or reads it from the ``orders``
projection, and keeps it (these three never change after acceptance). Anything referring to an
order it cannot find is treated as invisible (fail closed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from actors.core.visibility import visible_to

_ORDER_KEYS = ("order_id", "buy_order_id", "sell_order_id")


@dataclass(frozen=True, slots=True)
class Access:
    """Who placed an order and who else may see it."""

    party_id: str
    visibility: str
    allow_list: frozenset[str]

    def visible_to(self, viewer: str | None) -> bool:
        """See :func:`actors.core.visibility.visible_to`; ``viewer`` is a party id or None."""
        return visible_to(self.visibility, self.allow_list, self.party_id, viewer)


def access_of(order: dict[str, Any]) -> Access:
    """The :class:`Access` of an order dict (``orders.Order.to_dict`` shape or an ``orders.doc``)."""
    return Access(
        str(order.get("party_id")), str(order.get("visibility")), frozenset(order.get("allow_list") or ())
    )


def _allow(v: Any) -> frozenset[str]:
    """An allow-list read from a jsonb column (text or already decoded)."""
    return frozenset((json.loads(v) if isinstance(v, str) else v) or ())


def _access_row(r: Any) -> Access:
    return Access(r["party_id"], str(r["visibility"]), _allow(r["allow_list"]))


class AccessBook:
    """A per-process cache ``order_id -> Access`` (and ``reservation_id -> order ids``) over
    PostgreSQL (``pool`` is an ``asyncpg.Pool``). Bounded: cleared when over ``max_entries``."""

    def __init__(self, pool: Any, max_entries: int = 200_000) -> None:
        self.pool = pool
        self.max_entries = max_entries
        self._orders: dict[str, Access] = {}
        self._reservations: dict[str, tuple[str, ...]] = {}

    def _room(self) -> None:
        if len(self._orders) + len(self._reservations) >= self.max_entries:
            self._orders.clear()
            self._reservations.clear()

    def learn(self, ev_type: str, payload: dict[str, Any]) -> None:
        """Remember what an event tells: an accepted order's access, a reservation's orders."""
        if ev_type == "ORDER_ACCEPTED":
            o = payload.get("order") or {}
            if o.get("order_id"):
                self._room()
                self._orders[o["order_id"]] = access_of(o)
        elif ev_type == "RESERVED" and payload.get("reservation_id"):
            self._room()
            self._reservations[payload["reservation_id"]] = tuple(
                str(payload[k]) for k in ("buy_order_id", "sell_order_id") if payload.get(k)
            )

    async def orders_of(self, ev_type: str, payload: dict[str, Any]) -> tuple[str, ...]:
        """Ids of the orders an event refers to (a RELEASED event through its reservation)."""
        if ev_type == "ORDER_ACCEPTED":
            oid = (payload.get("order") or {}).get("order_id")
            return (str(oid),) if oid else ()
        ids = tuple(str(payload[k]) for k in _ORDER_KEYS if payload.get(k))
        rid = payload.get("reservation_id")
        if ids or not rid:
            return ids
        if rid not in self._reservations:
            r = await self.pool.fetchrow(
                "SELECT buy_order_id, sell_order_id FROM reservations WHERE reservation_id = $1", rid
            )
            if r is None:
                return ()
            self._room()
            self._reservations[rid] = (r["buy_order_id"], r["sell_order_id"])
        return self._reservations[rid]

    async def access(self, order_ids: tuple[str, ...] | list[str]) -> dict[str, Access]:
        """``Access`` of each known order among ``order_ids`` (unknown ids are left out)."""
        missing = [i for i in order_ids if i not in self._orders]
        if missing:
            rows = await self.pool.fetch(
                "SELECT order_id, party_id, doc->>'visibility' AS visibility, "
                "doc->'allow_list' AS allow_list FROM orders WHERE order_id = ANY($1::text[])",
                missing,
            )
            self._room()
            for r in rows:
                self._orders[r["order_id"]] = _access_row(r)
        return {i: self._orders[i] for i in order_ids if i in self._orders}

    async def visible(self, order_ids: tuple[str, ...] | list[str], viewer: str | None) -> bool:
        """True when every one of ``order_ids`` is known and visible to ``viewer`` (False for none)."""
        if not order_ids:
            return False
        acc = await self.access(order_ids)
        return all(i in acc and acc[i].visible_to(viewer) for i in order_ids)

    async def event_visible(self, ev_type: str, payload: dict[str, Any], viewer: str | None) -> bool:
        """True when ``viewer`` may see an event about orders (see :meth:`visible`)."""
        return await self.visible(await self.orders_of(ev_type, payload), viewer)


def trade_visible(row: Any, viewer: str | None) -> bool:
    """A trade row with the access columns of both orders (``buy_*``/``sell_*``, see
    :data:`TRADES_SQL`) is visible when both orders are."""
    return all(
        row[f"{s}_vis"] is not None
        and visible_to(row[f"{s}_vis"], _allow(row[f"{s}_allow"]), row[f"{s}_party"], viewer)
        for s in ("buy", "sell")
    )


TRADES_SQL = (
    "SELECT a.seq, a.ts, a.quantity_kg, a.price, "
    "b.party_id AS buy_party, b.doc->>'visibility' AS buy_vis, b.doc->'allow_list' AS buy_allow, "
    "s.party_id AS sell_party, s.doc->>'visibility' AS sell_vis, s.doc->'allow_list' AS sell_allow "
    "FROM allocations a "
    "LEFT JOIN orders b ON b.order_id = a.buy_order_id LEFT JOIN orders s ON s.order_id = a.sell_order_id "
    "WHERE a.shard_id = $1 AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3"
)


async def visible_trades(pool: Any, shard_id: str, viewer: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, at most ``limit`` trades ``{seq, ts, quantity_kg (kg), price (paise/kg)}`` of
    ``shard_id`` that ``viewer`` may see; pages through the allocations until enough are found."""
    out: list[dict[str, Any]] = []
    before = 2**62
    page = max(100, 2 * limit)
    while len(out) < limit:
        rows = await pool.fetch(TRADES_SQL, shard_id, before, page)
        for r in rows:
            if trade_visible(r, viewer):
                out.append({k: r[k] for k in ("seq", "ts", "quantity_kg", "price")})
                if len(out) >= limit:
                    break
        if len(rows) < page:
            break
        before = rows[-1]["seq"]
    return out
