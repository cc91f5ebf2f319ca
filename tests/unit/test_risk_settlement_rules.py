"""Settlement-history rules: the standing computed from invoice rows, and the exact outcomes,
reason codes and messages of the BLOCK (past due beyond N days), WARN (overdue) and default-history
checks."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.core.risk.rules import Party, Reason, Role, RulesConfig, RulesEngine, settlement_messages
from actors.core.risk.standing import CLEAN, DAY_MS, SettlementStanding, standing_from_rows
from actors.core.risk.types import Outcome, RiskQuery

T0 = 1_764_000_000_000  # epoch ms: the instant the standing is read at
BUYER = Party("B1", role=Role.BUYER)
SELLER = Party("S1", role=Role.SELLER)


def inv(
    due_days_ago: float,
    amount: int = 1_000_000,
    paid_days_ago: float | None = None,
    paid_amount: int = 0,
    issued_days_before_due: float = 30,
) -> dict[str, Any]:
    due = T0 - int(due_days_ago * DAY_MS)
    return {
        "party_id": "B1",
        "invoiced_ts": due - int(issued_days_before_due * DAY_MS),
        "due_ts": due,
        "amount": amount,
        "paid_ts": None if paid_days_ago is None else T0 - int(paid_days_ago * DAY_MS),
        "paid_amount": amount if paid_days_ago is not None else paid_amount,
    }


def q(ts: int = T0) -> RiskQuery:
    return RiskQuery("BO", "SO", "B1", "S1", "cotton", "IN-GJ", 1000, 7500, ts)


def test_no_rows_is_clean() -> None:
    assert standing_from_rows([], T0, 30) is CLEAN
    assert CLEAN.clean


def test_invoice_not_yet_due_is_not_overdue() -> None:
    assert standing_from_rows([inv(-5)], T0, 30) is CLEAN


def test_overdue_amount_days_and_count() -> None:
    rows = [inv(12, 1_000_000, paid_amount=250_000), inv(3, 500_000), inv(-10, 9_999_999)]
    assert standing_from_rows(rows, T0, 30) == SettlementStanding(
        overdue_paise=750_000 + 500_000, overdue_invoices=2, days_past_due=12, defaults=0
    )


def test_days_past_due_are_whole_days() -> None:
    assert standing_from_rows([inv(2.9)], T0, 30).days_past_due == 2


def test_unpaid_beyond_grace_is_a_default_and_a_late_payment_keeps_it() -> None:
    rows = [inv(45), inv(80, paid_days_ago=20), inv(20, paid_days_ago=15)]
    # 45 days past due and open: overdue and a default; paid 60 days after due: a default in the
    # history; paid 5 days late: neither
    assert standing_from_rows(rows, T0, 30) == SettlementStanding(1_000_000, 1, 45, 2)


def test_rows_after_as_of_are_ignored_and_later_payments_count_as_unpaid() -> None:
    rows = [inv(10, paid_days_ago=-3), inv(-40, issued_days_before_due=-50)]
    # paid three days after as_of: still outstanding in full at as_of; issued after as_of: absent
    assert standing_from_rows(rows, T0, 30) == SettlementStanding(1_000_000, 1, 10, 0)


def test_past_due_beyond_block_days_blocks_with_the_figures() -> None:
    r = RulesEngine().evaluate(q(), BUYER, SELLER, 0, [inv(45, 1_234_500)])
    assert r.outcome == Outcome.BLOCK
    assert r.reasons == (Reason.BUYER_PAST_DUE, Reason.BUYER_OVERDUE, Reason.BUYER_DEFAULT_HISTORY)
    assert r.score == 1.0
    assert r.messages[Reason.BUYER_PAST_DUE] == (
        "buyer has an invoice 45 days past due (limit 30); Rs 12,345.00 overdue on 1 invoice(s)"
    )
    assert r.messages[Reason.BUYER_OVERDUE] == (
        "buyer is overdue: Rs 12,345.00 overdue on 1 invoice(s), oldest 45 days past due"
    )
    assert r.messages[Reason.BUYER_DEFAULT_HISTORY] == (
        "buyer has 1 default(s) in its history (unpaid more than 30 days after due)"
    )


def test_exactly_block_days_past_due_only_warns() -> None:
    r = RulesEngine().evaluate(q(), BUYER, SELLER, 0, [inv(30)])
    assert (r.outcome, r.reasons, r.score) == (Outcome.WARN, (Reason.BUYER_OVERDUE,), 0.5)


def test_overdue_at_all_warns_and_can_be_switched_off() -> None:
    r = RulesEngine().evaluate(q(), BUYER, SELLER, 0, [inv(1)])
    assert (r.outcome, r.reasons) == (Outcome.WARN, (Reason.BUYER_OVERDUE,))
    off = RulesEngine(RulesConfig(overdue_warn=False)).evaluate(q(), BUYER, SELLER, 0, [inv(1)])
    assert (off.outcome, off.reasons, dict(off.messages)) == (Outcome.PASS, (), {})


def test_block_days_configurable() -> None:
    eng = RulesEngine(RulesConfig(overdue_block_days=7))
    r = eng.evaluate(q(), BUYER, SELLER, 0, [inv(8)])
    assert (r.outcome, r.reasons) == (Outcome.BLOCK, (Reason.BUYER_PAST_DUE, Reason.BUYER_OVERDUE))
    assert r.messages[Reason.BUYER_PAST_DUE].startswith("buyer has an invoice 8 days past due (limit 7)")


def test_default_history_warns_after_payment_and_count_is_configurable() -> None:
    rows = [inv(100, paid_days_ago=50)]  # paid 50 days late, nothing open now
    r = RulesEngine().evaluate(q(), BUYER, SELLER, 0, rows)
    assert (r.outcome, r.reasons) == (Outcome.WARN, (Reason.BUYER_DEFAULT_HISTORY,))
    r2 = RulesEngine(RulesConfig(default_warn_count=2)).evaluate(q(), BUYER, SELLER, 0, rows)
    assert (r2.outcome, r2.reasons) == (Outcome.PASS, ())
    r3 = RulesEngine(RulesConfig(default_grace_days=60)).evaluate(q(), BUYER, SELLER, 0, rows)
    assert (r3.outcome, r3.reasons) == (Outcome.PASS, ())


def test_standing_is_read_at_the_pair_timestamp() -> None:
    rows = [inv(0)]  # due exactly at T0
    eng = RulesEngine()
    assert eng.evaluate(q(T0), BUYER, SELLER, 0, rows).outcome == Outcome.PASS
    assert eng.evaluate(q(T0 + 5 * DAY_MS), BUYER, SELLER, 0, rows).reasons == (Reason.BUYER_OVERDUE,)
    late = eng.evaluate(q(T0 + 31 * DAY_MS), BUYER, SELLER, 0, rows)
    assert (late.outcome, late.reasons) == (
        Outcome.BLOCK,
        (Reason.BUYER_PAST_DUE, Reason.BUYER_OVERDUE, Reason.BUYER_DEFAULT_HISTORY),
    )


def test_other_rules_still_come_first() -> None:
    r = RulesEngine().evaluate(q(), Party("B1", role=Role.SELLER), SELLER, 0, [inv(5)])
    assert r.reasons == (Reason.BUYER_ROLE_CANNOT_BUY, Reason.BUYER_OVERDUE)


def test_messages_empty_for_a_clean_standing() -> None:
    assert settlement_messages(CLEAN, RulesConfig()) == {}


row = st.fixed_dictionaries(
    {
        "due": st.integers(-100, 200),
        "amount": st.integers(1, 10**9),
        "paid": st.one_of(st.none(), st.integers(-50, 300)),
        "part": st.floats(0, 1),
    }
)


@given(st.lists(row, max_size=12), st.integers(0, 90))
def test_standing_invariants(specs: list[dict[str, Any]], grace: int) -> None:
    rows = [
        inv(
            s["due"],
            s["amount"],
            None if s["paid"] is None else s["due"] - s["paid"] / 10,
            int(s["amount"] * s["part"]),
        )
        for s in specs
    ]
    st_ = standing_from_rows(rows, T0, grace)
    owed = sum(r["amount"] - r["paid_amount"] for r in rows if r["paid_ts"] is None and r["due_ts"] < T0)
    assert 0 <= st_.overdue_paise <= sum(r["amount"] for r in rows)
    assert st_.overdue_invoices <= len(rows) and st_.defaults <= len(rows)
    assert (st_.overdue_paise == 0) == (st_.overdue_invoices == 0)
    assert (st_.days_past_due > 0) <= (st_.overdue_invoices > 0)
    assert st_.overdue_paise >= owed  # every unpaid past-due balance counts, in full
    # a default never leaves the history as time passes
    assert standing_from_rows(rows, T0 + 10 * DAY_MS, grace).defaults >= st_.defaults


def test_standing_is_read_at_the_buyers_desk_time_when_later() -> None:
    # a sweep judged the invoice 35 days past due at a desk time ahead of the order's timestamp
    row = {**inv(-10), "desk_ts": T0 + 45 * DAY_MS}  # due in 10 days at T0; judged at T0 + 45 d
    assert standing_from_rows([row], T0, 30) == SettlementStanding(1_000_000, 1, 35, 1)
    r = RulesEngine().evaluate(q(), BUYER, SELLER, 0, [row])
    assert r.outcome == Outcome.BLOCK and r.reasons[0] == Reason.BUYER_PAST_DUE
    # a desk time before the order changes nothing
    assert standing_from_rows([{**inv(3), "desk_ts": T0 - DAY_MS}], T0, 30).days_past_due == 3
