"""Rules tier: every rule, with its exact reason codes."""

from __future__ import annotations

import pytest

from actors.core.risk.market import MarketReference
from actors.core.risk.rules import (
    DAY_MS,
    AllocationHistory,
    KycStatus,
    Party,
    Reason,
    Role,
    RulesConfig,
    RulesEngine,
    linked_by_identity,
)
from actors.core.risk.types import Outcome, RiskQuery

T0 = 1_764_000_000_000  # epoch ms


def q(buyer: str = "B1", seller: str = "S1", kg: int = 1000, price: int = 7500, ts: int = T0) -> RiskQuery:
    return RiskQuery("BO", "SO", buyer, seller, "cotton", "IN-GJ", kg, price, ts)


def party(pid: str, **kw: object) -> Party:
    return Party(pid, **kw)  # type: ignore[arg-type]


def engine(**cfg: object) -> RulesEngine:
    return RulesEngine(RulesConfig(**cfg))  # type: ignore[arg-type]


def test_clean_pair_passes() -> None:
    r = engine().evaluate(q(), party("B1", role=Role.BUYER), party("S1", role=Role.SELLER))
    assert (r.outcome, r.reasons, r.score) == (Outcome.PASS, (), 0.0)


@pytest.mark.parametrize(
    ("buyer", "seller", "reasons"),
    [
        (None, party("S1"), (Reason.BUYER_UNKNOWN,)),
        (party("B1"), None, (Reason.SELLER_UNKNOWN,)),
        (party("B1", kyc_status=KycStatus.PENDING), party("S1"), (Reason.BUYER_KYC_NOT_VERIFIED,)),
        (party("B1"), party("S1", kyc_status=KycStatus.REJECTED), (Reason.SELLER_KYC_NOT_VERIFIED,)),
        (party("B1", sanctioned=True), party("S1"), (Reason.BUYER_SANCTIONED,)),
        (party("B1"), party("S1", sanctioned=True), (Reason.SELLER_SANCTIONED,)),
        (party("B1", country="IR"), party("S1"), (Reason.BUYER_SANCTIONED_COUNTRY,)),
        (party("B1"), party("S1", country="kp"), (Reason.SELLER_SANCTIONED_COUNTRY,)),
        (party("B1", role=Role.SELLER), party("S1"), (Reason.BUYER_ROLE_CANNOT_BUY,)),
        (party("B1"), party("S1", role=Role.BUYER), (Reason.SELLER_ROLE_CANNOT_SELL,)),
        (party("B1", role=Role.OPERATOR), party("S1"), (Reason.BUYER_ROLE_CANNOT_BUY,)),
        (party("B1", pan="ABCDE1234F"), party("S1", pan="abcde1234f"), (Reason.LINKED_PAN,)),
        # the PAN embedded in a GSTIN (chars 3-12) links to the same PAN
        (party("B1", pan="ABCDE1234F"), party("S1", gstin="24ABCDE1234F1Z5"), (Reason.LINKED_PAN,)),
        (
            party("B1", gstin="24ABCDE1234F1Z5"),
            party("S1", gstin="24ABCDE1234F1Z5"),
            (Reason.LINKED_PAN, Reason.LINKED_GSTIN),
        ),
        (party("B1", linked_parties=frozenset({"S1"})), party("S1"), (Reason.WASH_TRADE,)),
        (party("B1"), party("S1", linked_parties=frozenset({"B1"})), (Reason.WASH_TRADE,)),
        (
            party("B1", kyc_status=KycStatus.SUSPENDED, sanctioned=True),
            party("S1"),
            (Reason.BUYER_KYC_NOT_VERIFIED, Reason.BUYER_SANCTIONED),
        ),
    ],
)
def test_blocking_rules(buyer: Party | None, seller: Party | None, reasons: tuple[str, ...]) -> None:
    r = engine().evaluate(q(), buyer, seller)
    assert r.outcome == Outcome.BLOCK
    assert r.reasons == reasons
    assert r.score == 1.0


def test_same_party_both_sides_is_wash_trade() -> None:
    p = party("B1")
    r = engine().evaluate(q(buyer="B1", seller="B1"), p, p)
    assert (r.outcome, r.reasons) == (Outcome.BLOCK, (Reason.WASH_TRADE,))


def test_shared_mobile_warns() -> None:
    r = engine().evaluate(q(), party("B1", mobile="+91 98765 43210"), party("S1", mobile="09876543210"))
    assert (r.outcome, r.reasons, r.score) == (Outcome.WARN, (Reason.LINKED_MOBILE,), 0.5)


def test_traders_can_buy_and_sell() -> None:
    r = engine().evaluate(q(), party("B1", role=Role.TRADER), party("S1", role=Role.TRADER))
    assert r.outcome == Outcome.PASS


def test_circular_trade_within_window_blocks() -> None:
    e = engine(circular_window_days=30)
    # B1 sold cotton to S1 ten days ago; now S1 sells back to B1.
    e.history.record("B1", "S1", "cotton", T0 - 10 * DAY_MS)
    r = e.evaluate(q(), party("B1"), party("S1"))
    assert (r.outcome, r.reasons) == (Outcome.BLOCK, (Reason.CIRCULAR_TRADE,))


def test_circular_trade_outside_window_or_other_commodity_passes() -> None:
    e = engine(circular_window_days=30)
    e.history.record("B1", "S1", "cotton", T0 - 31 * DAY_MS)
    e.history.record("B1", "S1", "soybean", T0 - DAY_MS)
    assert e.evaluate(q(), party("B1"), party("S1")).outcome == Outcome.PASS
    # same direction again (S1 -> B1 repeat business) is not circular
    e2 = engine()
    e2.history.record("S1", "B1", "cotton", T0 - DAY_MS)
    assert e2.evaluate(q(), party("B1"), party("S1")).outcome == Outcome.PASS


def test_allocation_history_keeps_latest() -> None:
    h = AllocationHistory()
    h.record("A", "B", "cotton", 5)
    h.record("A", "B", "cotton", 3)
    assert h.last_sale("A", "B", "cotton") == 5 and len(h) == 1


def test_credit_limit_block_and_warning() -> None:
    e = engine(credit_warn_fraction=0.8)
    b = party("B1", credit_limit=10_000_000)  # Rs 1 lakh in paise
    s = party("S1")
    # 1000 kg x 7500 paise/kg = 7,500,000 paise notional
    assert e.evaluate(q(), b, s, exposure=0).outcome == Outcome.PASS
    w = e.evaluate(q(), b, s, exposure=1_000_000)  # 8.5M > 8M (80%)
    assert (w.outcome, w.reasons) == (Outcome.WARN, (Reason.CREDIT_LIMIT_WARNING,))
    x = e.evaluate(q(), b, s, exposure=2_500_001)  # 10,000,001 > 10M
    assert (x.outcome, x.reasons) == (Outcome.BLOCK, (Reason.CREDIT_LIMIT_EXCEEDED,))
    # exactly at the limit is allowed (warning only)
    assert e.evaluate(q(), b, s, exposure=2_500_000).reasons == (Reason.CREDIT_LIMIT_WARNING,)
    # no limit = unlimited
    assert e.evaluate(q(), party("B1"), s, exposure=10**15).outcome == Outcome.PASS


def _reference(prices: list[int]) -> MarketReference:
    m = MarketReference(window=100, min_samples=5)
    for p in prices:
        m.observe("cotton", "IN-GJ", p)
    return m


def test_price_anomaly_warns_on_robust_z() -> None:
    # median 7500, MAD 100 -> z = 0.6745 * (p - 7500) / 100; |z| > 3.5 beyond ~519 paise/kg
    m = _reference([7300, 7400, 7500, 7600, 7700])
    e = RulesEngine(RulesConfig(price_z_warn=3.5), market=m)
    ok = e.evaluate(q(price=7900), party("B1"), party("S1"))
    assert ok.outcome == Outcome.PASS and ok.price_z == pytest.approx(0.6745 * 400 / 100)
    hi = e.evaluate(q(price=8100), party("B1"), party("S1"))
    assert (hi.outcome, hi.reasons) == (Outcome.WARN, (Reason.PRICE_ANOMALY,))
    lo = e.evaluate(q(price=6900), party("B1"), party("S1"))
    assert lo.reasons == (Reason.PRICE_ANOMALY,)


def test_price_without_reference_is_not_checked() -> None:
    e = RulesEngine(market=MarketReference(min_samples=5))
    r = e.evaluate(q(price=1), party("B1"), party("S1"))
    assert r.outcome == Outcome.PASS and r.price_z is None


def test_block_dominates_warn_and_reasons_in_order() -> None:
    e = engine()
    r = e.evaluate(
        q(),
        party("B1", mobile="9876543210", credit_limit=1),
        party("S1", mobile="9876543210", sanctioned=True),
    )
    assert r.outcome == Outcome.BLOCK
    assert r.reasons == (Reason.SELLER_SANCTIONED, Reason.LINKED_MOBILE, Reason.CREDIT_LIMIT_EXCEEDED)


def test_record_allocation_feeds_history_and_market() -> None:
    m = MarketReference(window=10, min_samples=1)
    e = RulesEngine(market=m)
    e.record_allocation("S1", "B1", "cotton", 7000, "IN-GJ", T0)
    assert e.history.last_sale("S1", "B1", "cotton") == T0
    assert m.stats("cotton", "IN-GJ") is not None


def test_linked_by_identity() -> None:
    me = party("A", pan="ABCDE1234F", mobile="9876543210", linked_parties=frozenset({"D"}))
    others = [
        party("B", gstin="27ABCDE1234F1Z5"),
        party("C", mobile="+919876543210"),
        party("D"),
        party("E", pan="ZZZZZ9999Z"),
        me,
    ]
    assert linked_by_identity(me, others) == {
        "B": (Reason.LINKED_PAN,),
        "C": (Reason.LINKED_MOBILE,),
        "D": (Reason.WASH_TRADE,),
    }
