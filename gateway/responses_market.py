"""Response models of the market data routes: top of book, depth, trade prints and search."""

from __future__ import annotations

from typing import Any, Literal

from gateway.responses_problems import Out


class TopOut(Out):
    """Best public bid/ask (paise/kg, null when that side is empty) and the open kg at each."""

    shard_id: str
    seq: int
    bid: int | None
    bid_kg: int
    ask: int | None
    ask_kg: int


class DepthOut(Out):
    """Aggregated public depth, best first: ``[price, open_kg, orders]`` per level."""

    shard_id: str
    seq: int
    bids: list[list[int]]
    asks: list[list[int]]


class TradeOut(Out):
    """A public trade print (no party or order ids)."""

    seq: int
    ts: int
    quantity_kg: int
    price: int


class TradesOut(Out):
    """Recent trades of a shard, newest first."""

    shard_id: str
    items: list[TradeOut]


class CandidateOut(Out):
    """A ranked availability for a search (counterparty not disclosed)."""

    order_id: str
    side: str | None = None
    price: int
    open_kg: int
    quality: dict[str, float] | None = None
    quality_ranges: dict[str, list[float]] | None = None
    region: str | None = None
    city: str | None = None
    district: str | None = None
    min_order_kg: int | None = None
    score: float
    breakdown: dict[str, Any] | None = None


class SearchOut(Out):
    """Ranked candidates for a hypothetical requirement; nothing is placed."""

    status: Literal["OK"]
    candidates: list[CandidateOut]
