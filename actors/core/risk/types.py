"""The risk-decision interface the matching core calls, once per command batch.

Before a batch executes, the core lists every candidate pair the batch may allocate or propose
(:class:`RiskQuery`) and the credit each buyer may need (``credit_requests``, paise). A decider
answers all of them at once with :class:`RiskVerdicts`: one :class:`RiskDecision` per pair and,
optionally, a credit grant per buyer (paise) that the core will not exceed while allocating in that
batch. A pair without a decision is never allocated. The rules and ML tiers (risk engine) and the
Ray Serve pool implement the protocols: :class:`BatchDecider` is what the core needs,
:class:`RiskDecider` what a shard calls on a synchronous decider (decide, settle, release),
:class:`AsyncRiskDecider` the remote one it awaits (decide_async + verdicts); :class:`PassAllDecider`
is the rules-free default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Outcome(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    BLOCK = "BLOCK"


@dataclass(frozen=True, slots=True)
class RiskQuery:
    """One candidate pair: the requirement (buy) and availability (sell) orders and their parties.

    ``quantity_kg`` is the most the pair could trade in this batch, ``price`` the trade price
    (paise/kg, the resting order's price).
    """

    buy_order_id: str
    sell_order_id: str
    buyer_id: str
    seller_id: str
    commodity: str
    region: str
    quantity_kg: int
    price: int
    ts: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.buy_order_id, self.sell_order_id)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """Outcome for one pair, with reasons (machine-readable codes) for every WARN/BLOCK.

    ``penalty`` is the fraction the quality-profile score loses on WARN (0.2 by the risk contract).
    ``trust`` in [0, 1] is the counterparty-trust score component. ``tiers`` names the tiers that
    answered (``rules``, ``ml``), ``model_versions`` the ML models used.
    """

    outcome: Outcome
    reasons: tuple[str, ...] = ()
    penalty: float = 0.0
    trust: float = 1.0
    score: float = 0.0
    tiers: tuple[str, ...] = ("rules",)
    model_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "reasons": list(self.reasons),
            "penalty": self.penalty,
            "trust": self.trust,
            "score": self.score,
            "tiers": list(self.tiers),
            "model_versions": dict(self.model_versions),
        }


PASS_DECISION = RiskDecision(Outcome.PASS, (), 0.0, 1.0, 0.0, ())


@dataclass(slots=True)
class RiskRequest:
    """What one command batch asks of risk: candidate pairs and credit requests per buyer (paise)."""

    queries: list[RiskQuery] = field(default_factory=list)
    credit_requests: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class RiskVerdicts:
    """The answer to a :class:`RiskRequest`.

    ``decisions`` maps ``(buy_order_id, sell_order_id)`` to a decision. ``credit_grants`` maps a
    buyer to the notional (paise) it may take on in this batch; a buyer absent from it is unlimited.
    ``pass_all`` means every pair passes (rules-free mode): the core then skips the lookup.
    """

    decisions: dict[tuple[str, str], RiskDecision] = field(default_factory=dict)
    credit_grants: dict[str, int] = field(default_factory=dict)
    pass_all: bool = False

    def get(self, buy_order_id: str, sell_order_id: str) -> RiskDecision | None:
        if self.pass_all:
            return self.decisions.get((buy_order_id, sell_order_id), PASS_DECISION)
        return self.decisions.get((buy_order_id, sell_order_id))


#: One decision on the wire: (outcome, reasons, penalty, trust, score, tiers, model versions).
WireDecision = tuple[str, tuple[str, ...], float, float, float, tuple[str, ...], dict[str, str]]
#: A decider's raw reply to one request: decisions in query order and credit grants (paise).
RiskReply = tuple[list[WireDecision], dict[str, int]]


class BatchDecider(Protocol):
    """What the matching core needs: vet a batch of candidate pairs. ``needs_queries`` False lets
    the core skip listing pairs (the rules-free default)."""

    needs_queries: bool

    def decide(self, request: RiskRequest) -> RiskVerdicts: ...


@runtime_checkable
class RiskDecider(BatchDecider, Protocol):
    """What a shard service calls on a synchronous decider, once per command batch: ``decide``, then,
    after executing the batch, ``settle(grants, used)`` to give back credit granted but unused
    (paise) and ``release(amounts)`` to give back exposure of released reservations (paise).
    Runtime-checkable: a shard tells a decider from a decider factory with ``isinstance``."""

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None: ...

    def release(self, amounts: Mapping[str, int]) -> None: ...


@runtime_checkable
class AsyncRiskDecider(RiskDecider, Protocol):
    """A remote decider (the Ray Serve risk pool client) the shard awaits instead of blocking its
    event loop: ``decide_async(request)`` sends the request, awaiting it gives the raw
    :data:`RiskReply`; ``verdicts(request, reply)`` turns that into :class:`RiskVerdicts`. The shard
    bounds the wait by ``timeout_s`` seconds and, on timeout or error, counts it in ``failures`` and
    fails closed (no decisions, zero grants). ``decide`` is the blocking form of the same.
    A shard tells the two kinds apart with ``isinstance(decider, AsyncRiskDecider)``."""

    timeout_s: float
    failures: int

    def decide_async(self, request: RiskRequest) -> Awaitable[RiskReply]: ...

    def verdicts(self, request: RiskRequest, reply: RiskReply) -> RiskVerdicts: ...


class PassAllDecider:
    """Rules-free default: every pair passes with full trust and no credit limit. For tests and
    benchmarks of the core only; production shards use the risk pool. A synchronous
    :class:`RiskDecider` (no credit is ever granted, so settling and releasing do nothing)."""

    needs_queries = False

    def decide(self, request: RiskRequest) -> RiskVerdicts:
        return RiskVerdicts(pass_all=True)

    def settle(self, grants: Mapping[str, int], used: Mapping[str, int]) -> None:
        """Nothing to give back: no credit was granted."""

    def release(self, amounts: Mapping[str, int]) -> None:
        """Nothing to give back: no exposure is tracked."""
