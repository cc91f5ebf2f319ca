"""Response models of the console's read endpoints (:mod:`gateway.console.reads`)."""

from __future__ import annotations

from gateway.responses import Out


class MeOut(Out):
    """The caller's API key: id, party (null for staff keys) and roles."""

    key_id: str
    party_id: str | None
    roles: list[str]


class MarketOut(Out):
    """One market of the shards registry."""

    shard_id: str
    region: str
    commodity: str
    status: str


class MarketPage(Out):
    """Every registered market, by shard id."""

    items: list[MarketOut]


class ReferenceOut(Out):
    """The market's Agmarknet reference, the one its price bands use (``modal``: low median of the
    state's modal prices over ``window_days`` to ``day``, ``samples`` of them), with the latest
    day's ``markets`` rows and their ``low``/``high`` modal; paise/kg (= Rs./quintal), null when
    the market has no reference."""

    shard_id: str
    source: str
    modal: int | None
    window_days: int
    samples: int
    day: str | None
    markets: int
    low: int | None
    high: int | None


class RejectCount(Out):
    """Rejections of one reason on one shard."""

    reason: str
    shard_id: str
    count: int


class RejectCounts(Out):
    """Rejections committed since ``since_ts`` (epoch ms), most frequent first."""

    since_ts: int
    minutes: int
    total: int
    items: list[RejectCount]
