"""Settlement kernel: contract lifecycle, quality claims, tolerance, invoices, payments, ledger."""

from __future__ import annotations

import pytest

from actors.core.posttrade import events as pe
from actors.core.posttrade.engine import (
    Cancel,
    Command,
    OpenContract,
    Pay,
    PostTradeError,
    RecordDelivery,
    SettlementEngine,
    Sweep,
)
from actors.core.posttrade.ledger import POST_PENDING, VOID_PENDING
from actors.core.posttrade.quality import adjustments, points_to_paise_per_kg
from actors.core.posttrade.state import SettlementState, contract_view
from actors.core.posttrade.terms import DAY_MS, Terms

CT = "CT-A-IN-GJ.cotton-5"


def _open(e: SettlementEngine, kg: int = 1700, price: int = 16000, commodity: str = "cotton") -> str:
    ranges = (
        {"micronaire": (3.5, 4.9), "strength_gtex": (26.0, 45.0)}
        if commodity == "cotton"
        else {
            "moisture_pct": (0.0, 10.0),
            "foreign_matter_pct": (0.0, 2.0),
        }
    )
    shard = f"IN-GJ.{commodity}"
    e.execute(OpenContract(1000, f"A-{shard}-5", shard, 5, commodity, "IN-GJ", "B", "S", kg, price, ranges))
    return f"CT-A-{shard}-5"


def test_points_convert_to_paise_per_kg_at_the_documented_rate() -> None:
    # -223 pts/lb = -0.0223 USD/lb; x 88 INR/USD / 0.45359237 kg/lb = -4.3264 INR/kg -> -433 paise/kg
    assert points_to_paise_per_kg(-223) == -433
    assert points_to_paise_per_kg(-270) == -524  # the 2013-crop press figures, a cross-check only
    assert points_to_paise_per_kg(-385) == -747
    assert points_to_paise_per_kg(40) == 78


def test_micronaire_discount_invoice_payments_and_exposure_to_zero() -> None:
    e = SettlementEngine()
    _open(e)
    assert e.state.ledger.exposure("B") == 1700 * 16000
    events, d = e.execute(
        RecordDelivery(2000, "S", CT, 1700, {"micronaire": 5.1, "strength_gtex": 28.0}, 2000)
    )
    assert [x.type for x in events] == [pe.DELIVERY_RECORDED, pe.INVOICE_ISSUED]
    assert d["adjustments"][0]["parameter"] == "micronaire"
    assert d["adjustments"][0]["paise_per_kg"] == -433
    assert d["adjusted_price"] == 15567
    inv = d["invoice"]
    assert (inv["invoice_id"], inv["amount"]) == (f"INV-{CT}-D1", 1700 * 15567)
    assert inv["due_at"] == 2000 + 30 * DAY_MS
    assert e.state.ledger.exposure("B") == 26_463_900
    _, p1 = e.execute(Pay(3000, "B", inv["invoice_id"], 10_000_000, "UTR1", 3000))
    assert p1["invoice"]["status"] == "PARTIALLY_PAID"
    assert e.state.ledger.exposure("B") == 16_463_900
    with pytest.raises(PostTradeError) as err:
        e.execute(Pay(3500, "B", inv["invoice_id"], 16_463_901, "UTR2", 3500))
    assert err.value.code == "overpayment" and err.value.status == 409
    events, p2 = e.execute(Pay(4000, "B", inv["invoice_id"], 16_463_900, "UTR2", 4000))
    assert [x.type for x in events] == [pe.PAYMENT_RECEIVED, pe.INVOICE_PAID]
    assert p2["invoice"]["status"] == "PAID"
    assert e.state.ledger.exposure("B") == 0
    again, p3 = e.execute(Pay(5000, "B", inv["invoice_id"], 10_000_000, "UTR1", 3000))
    assert again == [] and p3["replayed"] and p3["payment"]["outstanding"] == 16_463_900
    assert e.state.contracts[CT].delivery_complete
    e.state.ledger.check()


def test_cancel_voids_the_pending_transfers() -> None:
    e = SettlementEngine()
    _open(e)
    pend = set(e.state.ledger.open_pending)
    assert len(pend) == 2
    ev1, v1 = e.execute(Cancel(2000, "B", CT, "MUTUAL", 2000))
    assert [x.type for x in ev1] == [pe.CANCEL_REQUESTED] and v1["status"] == "OPEN"
    ev2, v2 = e.execute(Cancel(2100, "S", CT, "MUTUAL", 2100))
    assert [x.type for x in ev2] == [pe.CANCEL_REQUESTED, pe.CONTRACT_CANCELLED]
    assert v2["status"] == "CANCELLED" and v2["cancelled"]["cancelled_kg"] == 1700
    voids = [t for t in e.state.ledger.transfers.values() if t.flags & VOID_PENDING]
    assert {t.pending_id for t in voids} == pend
    assert e.state.ledger.open_pending == {} and e.state.ledger.exposure("B") == 0
    with pytest.raises(PostTradeError) as err:
        e.execute(RecordDelivery(3000, "S", CT, 100, {}, 3000))
    assert err.value.code == "contract_not_open"
    e.state.ledger.check()


def test_tolerance_refuses_the_excess_and_closes_within_five_percent() -> None:
    e = SettlementEngine()
    _open(e, kg=1000)
    _, d = e.execute(RecordDelivery(2000, "S", CT, 1100, {}, 2000))
    assert (d["settled_kg"], d["refused_kg"], d["complete"]) == (1050, 50, True)
    assert d["invoice"]["amount"] == 1050 * 16000
    e2 = SettlementEngine()
    _open(e2, kg=1000)
    _, d1 = e2.execute(RecordDelivery(2000, "S", CT, 900, {}, 2000))
    assert (d1["settled_kg"], d1["complete"], d1["contract_status"]) == (900, False, "PARTIALLY_DELIVERED")
    assert e2.state.ledger.exposure("B") == 900 * 16000 + 100 * 16000
    _, d2 = e2.execute(RecordDelivery(2500, "S", CT, 60, {}, 2500))
    assert (d2["delivery_id"], d2["complete"]) == (f"{CT}-D2", True)
    assert e2.state.ledger.open_pending == {}
    assert e2.state.ledger.exposure("B") == 960 * 16000
    e2.state.ledger.check()
    posts = [t for t in e2.state.ledger.transfers.values() if t.flags & POST_PENDING]
    assert [t.amount for t in posts] == [900 * 16000, 60 * 16000]


def test_grain_moisture_and_foreign_matter_rebates() -> None:
    adj = adjustments(
        "soybean",
        4500,
        {"moisture_pct": (0.0, 10.0), "foreign_matter_pct": (0.0, 2.0)},
        {"moisture_pct": 11.5, "foreign_matter_pct": 2.5},
    )
    assert [(a.parameter, a.paise_per_kg) for a in adj] == [
        ("moisture_pct", -68),
        ("foreign_matter_pct", -23),
    ]


def test_sweep_overdue_default_and_failed_delivery() -> None:
    e = SettlementEngine(Terms(grace_days=30))
    _open(e)
    _, d = e.execute(RecordDelivery(2000, "S", CT, 1700, {}, 2000))
    due = d["invoice"]["due_at"]
    assert e.execute(Sweep(due, due))[0] == []
    ev, r = e.execute(Sweep(due + 3 * DAY_MS, due + 3 * DAY_MS))
    assert [x.type for x in ev] == [pe.INVOICE_OVERDUE] and ev[0].payload.days_past_due == 3
    assert e.state.invoices[d["invoice"]["invoice_id"]].overdue_at == due + 3 * DAY_MS
    ev, _ = e.execute(Sweep(due + 31 * DAY_MS, due + 31 * DAY_MS))
    assert [x.type for x in ev] == [pe.CONTRACT_DEFAULTED]
    assert e.execute(Sweep(due + 40 * DAY_MS, due + 40 * DAY_MS))[0] == []
    e2 = SettlementEngine()
    _open(e2)
    until = e2.state.contracts[CT].terms.delivery_until
    ev, r = e2.execute(Sweep(until + 1, until + 1))
    assert [x.type for x in ev] == [pe.CONTRACT_CANCELLED]
    assert ev[0].payload.reason == pe.SELLER_FAILED_TO_DELIVER and r["cancelled"] == 1


def test_refusals_change_nothing() -> None:
    e = SettlementEngine()
    _open(e)
    cases: list[tuple[Command, str]] = [
        (RecordDelivery(2000, "B", CT, 10, {}, 2000), "not_your_side"),
        (RecordDelivery(2000, "X", CT, 10, {}, 2000), "unknown_contract"),
        (RecordDelivery(2000, "S", CT, 0, {}, 2000), "invalid_quantity"),
        (RecordDelivery(2000, "S", CT, 10, {}, 999), "before_open"),
        (RecordDelivery(2000, "S", CT, 10, {"micronaire": 9.0}, 2000), "invalid_quality"),
        (RecordDelivery(2000, "S", CT, 10, {}, 1000 + 16 * DAY_MS), "delivery_window_closed"),
        (Cancel(2000, "B", CT, "OPERATOR", 2000), "forbidden"),
    ]
    for cmd, code in cases:
        with pytest.raises(PostTradeError) as err:
            e.execute(cmd)
        assert err.value.code == code
    assert e.state.seq == 1


def test_open_is_idempotent_and_replay_equals_live() -> None:
    e = SettlementEngine()
    log = e.execute(
        OpenContract(1000, "A-IN-GJ.cotton-5", "IN-GJ.cotton", 5, "cotton", "IN-GJ", "B", "S", 1700, 16000)
    )[0]
    again = OpenContract(1000, "A-IN-GJ.cotton-5", "IN-GJ.cotton", 5, "cotton", "IN-GJ", "B", "S", 1, 1)
    assert e.execute(again)[0] == []
    for cmd in (
        RecordDelivery(2000, "S", CT, 1000, {"micronaire": 3.2}, 2000, key="k1"),
        RecordDelivery(2000, "S", CT, 1000, {"micronaire": 3.2}, 2000, key="k1"),
        Pay(3000, "B", f"INV-{CT}-D1", 500, "R1", 3000),
    ):
        log += e.execute(cmd)[0]
    assert [x.seq for x in log] == [1, 2, 3, 4]
    assert [x.type for x in log] == [
        pe.CONTRACT_OPENED,
        pe.DELIVERY_RECORDED,
        pe.INVOICE_ISSUED,
        pe.PAYMENT_RECEIVED,
    ]
    replay = SettlementState()
    replay.apply_all(log)
    assert contract_view(replay, replay.contracts[CT]) == contract_view(e.state, e.state.contracts[CT])
    assert replay.ledger == e.state.ledger
    assert replay.sources == {"IN-GJ.cotton": 5}
