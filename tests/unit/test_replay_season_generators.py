"""The season's behaviour generators: buyers' payments from real UCI rows, sellers' deliveries with
quality drifted by real HVI variation; exact, seeded, and invariant under hypothesis."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.replay.behaviour import DAY_MS, Behaviour, behaviour_for, load_behaviours, payments_for
from gateway.replay.delivery import DRIFT, HOUR_MS, delivered_quality, hvi_means, plan_delivery
from gateway.replay.quality import load_hvi
from gateway.replay.stats import SeasonStats
from gateway.replay.summary import exposure_of, summarize_season

DUE = 1_770_000_000_000
ON_TIME = Behaviour(0, (-1, 0, -2, -1, 0, 0), (1.0,) * 6, False)


@pytest.fixture(scope="module")
def behaviours() -> list[Behaviour]:
    return load_behaviours()


def test_uci_rows_are_read_with_their_statuses_and_ratios(behaviours: list[Behaviour]) -> None:
    assert len(behaviours) == 30_000
    # the first data row of UCI dataset 350: PAY_0..6 = 2, 2, -1, -1, -2, -2; BILL_AMT1..2 = 3913,
    # 3102; PAY_AMT1 = 0, PAY_AMT2 = 689; BILL_AMT3 = 689; defaulted next month
    b = behaviours[0]
    assert b.status == (2, 2, -1, -1, -2, -2) and b.defaulter
    assert b.pay_ratio[0] == 0.0 and b.pay_ratio[1] == pytest.approx(689 / 689)
    assert sum(x.defaulter for x in behaviours) == 6636  # 22.12 % positives


def test_on_time_payer_pays_in_full_before_due() -> None:
    pays, never = payments_for(ON_TIME, 0, "INV-1", 1_000_000, DUE, 7)
    assert not never and len(pays) == 1
    (p,) = pays
    assert p.amount == 1_000_000 and p.ref == "INV-1-P1"
    assert DUE - 5 * DAY_MS <= p.paid_at <= DUE


def test_months_late_and_partial_payment() -> None:
    b = Behaviour(1, (3, 1, 0, 0, 0, 0), (0.25, 1.0, 1.0, 1.0, 1.0, 1.0), False)
    pays, never = payments_for(b, 0, "INV-2", 1_000_001, DUE, 7)
    assert not never
    first, rest = pays
    assert DUE + 61 * DAY_MS <= first.paid_at < DUE + 90 * DAY_MS  # status 3: 60 + [1, 30) days
    assert (first.amount, rest.amount) == (250_000, 750_001)
    assert rest.paid_at == first.paid_at + 30 * DAY_MS
    # the 7th invoice reads month 1 again
    assert payments_for(b, 6, "INV-2", 1_000_001, DUE, 7)[0][0].amount == 250_000


def test_defaulter_two_months_late_never_pays_the_rest() -> None:
    b = Behaviour(2, (2, 0, 0, 0, 0, 0), (0.1, 1, 1, 1, 1, 1), True)
    pays, never = payments_for(b, 0, "INV-3", 1_000_000, DUE, 7)
    assert never and [p.amount for p in pays] == [100_000]
    # nothing paid at all: no payment, still never settled
    b0 = Behaviour(3, (4, 0, 0, 0, 0, 0), (0.0, 1, 1, 1, 1, 1), True)
    assert payments_for(b0, 0, "INV-4", 1_000_000, DUE, 7) == ([], True)


def test_buyer_behaviour_is_seeded_per_buyer(behaviours: list[Behaviour]) -> None:
    a = behaviour_for("B-IN-GJ-cott-1", behaviours, 7)
    assert a == behaviour_for("B-IN-GJ-cott-1", behaviours, 7)
    assert a.row == random.Random("7:B-IN-GJ-cott-1").randrange(30_000)


def test_season_over_real_rows_has_late_payers_and_few_defaults(behaviours: list[Behaviour]) -> None:
    late = defaults = n = 0
    for i in range(60):
        b = behaviour_for(f"B{i}", behaviours, 7)
        for k in range(6):
            pays, never = payments_for(b, k, f"INV-{i}-{k}", 1_000_000, DUE, 7)
            n += 1
            defaults += never
            late += bool(pays) and pays[-1].paid_at > DUE
    assert 0 < defaults < n * 0.2 and late > n * 0.2


@given(
    st.tuples(*[st.integers(-2, 8)] * 6),
    st.tuples(*[st.floats(0, 1)] * 6),
    st.booleans(),
    st.integers(0, 40),
    st.integers(1, 10**12),
)
def test_payments_never_exceed_the_invoice(
    status: tuple[int, ...], ratio: tuple[float, ...], defaulter: bool, k: int, amount: int
) -> None:
    pays, never = payments_for(Behaviour(0, status, ratio, defaulter), k, "INV-X", amount, DUE, 1)
    total = sum(p.amount for p in pays)
    assert all(p.amount > 0 for p in pays)
    assert total == amount if not never else total < amount
    assert [p.paid_at for p in pays] == sorted(p.paid_at for p in pays)
    assert len({p.ref for p in pays}) == len(pays)


HVI = [(28.0, 4.0, 30.0, 82.0), (30.0, 5.0, 32.0, 84.0)]


def test_delivered_quality_drifts_by_hvi_deviation() -> None:
    means = hvi_means(HVI)
    assert means == (29.0, 4.5, 31.0, 83.0)
    offered = {"micronaire": 4.2, "strength_gtex": 29.0, "trash_pct": 3.0, "oil_pct": 20.0}
    q = delivered_quality(random.Random(0), offered, HVI, means)
    entry = HVI[random.Random(0).randrange(2)]
    assert q["micronaire"] == round(4.2 + DRIFT * (entry[1] - 4.5), 1)
    assert q["strength_gtex"] == round(29.0 + DRIFT * (entry[2] - 31.0), 1)
    assert 2.5 <= q["trash_pct"] <= 3.5 and 18.0 <= q["oil_pct"] <= 22.0


def test_delivery_inside_window_and_tolerance_and_seeded() -> None:
    hvi = load_hvi()
    means = hvi_means(hvi)
    opened, until = DUE, DUE + 15 * DAY_MS
    plans = [
        plan_delivery(f"CT-{i}", 10_000, opened, until, {"micronaire": 4.2}, hvi, means, 7)
        for i in range(300)
    ]
    done = [p for p in plans if p.at is not None]
    assert 0 < len(plans) - len(done) < 20  # about 2 % fail to deliver
    assert all(opened + HOUR_MS <= p.at < until - HOUR_MS for p in done if p.at is not None)
    assert all(9_700 <= p.kg <= 10_300 for p in done)
    assert all(abs(p.quality["micronaire"] - 4.2) < 1.0 for p in done)
    again = plan_delivery("CT-5", 10_000, opened, until, {"micronaire": 4.2}, hvi, means, 7)
    assert again == plans[5]


def test_season_summary_figures() -> None:
    s = SeasonStats()
    s.record_delivery(
        {
            "delivered_kg": 10_100,
            "settled_kg": 10_100,
            "adjustments": [{"parameter": "micronaire", "paise_per_kg": -120}],
            "invoice": {"invoice_id": "INV-1", "amount": 69_487_900},
        }
    )
    s.first_ts, s.end_ts = DUE, DUE + 100 * DAY_MS
    paid = {"status": "PAID", "amount": 69_487_900, "paid": 69_487_900, "outstanding": 0}
    s.record_invoice(
        {**paid, "issued_at": DUE, "paid_at": DUE + 40 * DAY_MS, "overdue_at": DUE + 31 * DAY_MS}
    )
    s.record_invoice(
        {
            "status": "PAID",
            "amount": 1_000_000,
            "paid": 1_000_000,
            "outstanding": 0,
            "issued_at": DUE,
            "paid_at": DUE + 10 * DAY_MS,
            "overdue_at": None,
        }
    )
    s.record_invoice(
        {
            "status": "DEFAULTED",
            "amount": 1_000_000,
            "paid": 400_000,
            "outstanding": 600_000,
            "issued_at": DUE + 50 * DAY_MS,
            "paid_at": None,
            "overdue_at": DUE + 81 * DAY_MS,
        }
    )
    s.record_balances("B1", {"exposure": 1_600_000, "credit_limit": 16_000_000})
    out = summarize_season(s)
    assert out["quality_adjustments"] == 1 and out["quality_adjustment_paise"] == -1_212_000
    assert (out["overdue_invoices"], out["overdue_invoice_paise"]) == (2, 70_487_900)
    assert (out["defaulted_invoices"], out["defaulted_paise"]) == (1, 600_000)
    assert out["invoiced_paise"] == 71_487_900 and out["paid_paise"] == 70_887_900
    # amount-weighted days outstanding: 40 d, 10 d, and 50 d to the season's end for the default
    assert out["dso_days"] == round((69_487_900 * 40 + 1_000_000 * 10 + 1_000_000 * 50) / 71_487_900, 1)
    assert out["dso_end_days"] == round(600_000 / 71_487_900 * 100, 1)
    assert out["exposure_max_utilisation"] == 0.1
    assert exposure_of({"exposure": {"balance": 5}}) == (5, None)
