"""What crosses the wire between a shard and the risk pool: compact pairs, encoded decisions, and the
names both sides agree on (Serve application and deployment, Redis keys of the model config).

Pickling a list of plain tuples costs about 1/30 of pickling the :class:`RiskQuery` dataclasses, so
a request travels as ``(pairs, credit_requests)`` (:func:`to_wire`) and a reply as
``(decisions, grants)`` (:data:`~actors.core.risk.types.RiskReply`).
"""

from __future__ import annotations

from typing import NamedTuple

from actors.core.risk.types import Outcome, RiskDecision, RiskRequest, WireDecision

APP_NAME = "risk"  # Serve application of the risk pool
DEPLOYMENT_NAME = "RiskPool"
MODEL_CONFIG_KEY = "risk:model_config"  # JSON user_config of the promoted models (under the prefix)
MODEL_CONFIG_VERSION_KEY = "risk:model_config_version"  # bumped on every promotion

#: One pair on the wire: the fields of :class:`~actors.core.risk.types.RiskQuery` in order.
WirePair = tuple[str, str, str, str, str, str, int, int, int]
#: A request on the wire: pairs and credit requests per buyer (paise).
WireRequestTuple = tuple[list[WirePair], dict[str, int]]


class Pair(NamedTuple):
    """A candidate pair as the replica reads it: the fields of :class:`RiskQuery` as a named tuple.
    ``quantity_kg`` kg, ``price`` paise/kg, ``ts`` epoch ms."""

    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    region: str
    quantity_kg: int
    price: int
    ts: int


class WireRequest(NamedTuple):
    """A :class:`RiskRequest` as a replica handles it: pairs and credit requests (paise)."""

    queries: list[Pair]
    credit_requests: dict[str, int]


def to_wire(request: RiskRequest) -> WireRequestTuple:
    """Compact, cheaply pickled form of a request."""
    return (
        [
            (
                q.buy_order_id,
                q.sell_order_id,
                q.buyer_id,
                q.seller_id,
                q.commodity,
                q.region,
                q.quantity_kg,
                q.price,
                q.ts,
            )
            for q in request.queries
        ],
        dict(request.credit_requests),
    )


def from_wire(obj: WireRequestTuple | RiskRequest) -> WireRequest:
    """A :class:`WireRequest` from :func:`to_wire` output (or a :class:`RiskRequest`)."""
    pairs, credit = to_wire(obj) if isinstance(obj, RiskRequest) else obj
    make = Pair._make
    return WireRequest([make(t) for t in pairs], dict(credit))


def encode_decision(d: RiskDecision) -> WireDecision:
    """A decision as a plain tuple (see :data:`~actors.core.risk.types.WireDecision`)."""
    return (str(d.outcome), d.reasons, d.penalty, d.trust, d.score, d.tiers, d.model_versions)


def decode_decision(t: WireDecision) -> RiskDecision:
    """The :class:`RiskDecision` of :func:`encode_decision` output."""
    return RiskDecision(Outcome(t[0]), tuple(t[1]), t[2], t[3], t[4], tuple(t[5]), dict(t[6]))
