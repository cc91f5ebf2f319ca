"""The shared feature builder: UCI mapping, live settlement history, order features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import features as F
from ml.datasets import UCI_PATH, load_credit, load_orders

DAY = 24 * 3600 * 1000
AS_OF = 1_767_225_600_000  # 2026-01-01T00:00Z, epoch ms


def test_uci_columns_map_onto_trade_credit_history() -> None:
    df = pd.read_csv(UCI_PATH, nrows=5)
    h = F.uci_to_history(df)
    assert list(h.columns) == list(F.HISTORY_COLUMNS)
    assert h["credit_limit"].tolist() == df["LIMIT_BAL"].astype(float).tolist()
    assert h["delay_1"].tolist() == df["PAY_0"].astype(float).tolist()
    assert h["delay_6"].tolist() == df["PAY_6"].astype(float).tolist()
    assert h["invoiced_3"].tolist() == df["BILL_AMT3"].astype(float).tolist()
    assert h["paid_6"].tolist() == df["PAY_AMT6"].astype(float).tolist()


def test_payment_features_values() -> None:
    row = {c: 0.0 for c in F.HISTORY_COLUMNS}
    row.update(
        credit_limit=1000.0, delay_1=2.0, delay_2=1.0, invoiced_1=500.0, invoiced_2=400.0, paid_1=100.0
    )
    X = F.build_payment_features(pd.DataFrame([row]))
    assert list(X.columns) == list(F.PAYMENT_FEATURES)
    r = X.iloc[0]
    assert r["utilization_1"] == 0.5
    assert r["utilization_mean"] == pytest.approx(900 / 6 / 1000)
    assert r["delay_max"] == 2.0 and r["months_delayed"] == 2.0
    assert r["pay_ratio"] == pytest.approx(100 / 900)
    assert r["paid_vs_prev_invoice_1"] == pytest.approx(100 / 400)
    assert r["paid_vs_prev_invoice_2"] == 1.0  # nothing invoiced before: nothing owed
    assert set(F.CREDIT_LIMIT_FEATURES).isdisjoint({"credit_limit", "utilization_1", "utilization_mean"})


def test_credit_dataset_is_the_real_file() -> None:
    ds = load_credit(sample=1000)
    assert ds.X.shape == (1000, len(F.PAYMENT_FEATURES))
    assert ds.y is not None and abs(ds.y.mean() - 0.2212) < 0.01  # stratified: 22.12% positives
    assert len(ds.sha256) == 64


def test_live_history_from_settlements() -> None:
    invoices = [
        # party A: invoiced 50 days ago, due 20 days ago, still unpaid -> overdue at month 1 end
        {
            "party_id": "A",
            "invoiced_ts": AS_OF - 50 * DAY,
            "due_ts": AS_OF - 20 * DAY,
            "amount": 1_000_000,
            "paid_ts": None,
            "paid_amount": 0,
        },
        # party B: invoiced 40 days ago, paid in full 10 days ago (before due)
        {
            "party_id": "B",
            "invoiced_ts": AS_OF - 40 * DAY,
            "due_ts": AS_OF - 5 * DAY,
            "amount": 500_000,
            "paid_ts": AS_OF - 10 * DAY,
            "paid_amount": 500_000,
        },
        # party C: invoiced 5 days ago, not yet due
        {
            "party_id": "C",
            "invoiced_ts": AS_OF - 5 * DAY,
            "due_ts": AS_OF + 25 * DAY,
            "amount": 200_000,
            "paid_ts": None,
            "paid_amount": 0,
        },
    ]
    h = F.history_from_invoices(invoices, {"A": 5_000_000, "B": 1_000_000, "D": 100}, AS_OF)
    assert list(h.index) == ["A", "B", "C", "D"]
    assert h.loc["A", "credit_limit"] == 50_000.0  # paise -> rupees
    assert h.loc["A", "delay_1"] == 1.0 and h.loc["A", "invoiced_1"] == 10_000.0
    assert h.loc["A", "delay_2"] == 0.0  # month 2 ended 30 days ago: invoiced, not yet due
    assert h.loc["A", "delay_3"] == -2.0  # nothing yet
    assert h.loc["B", "delay_1"] == -1.0 and h.loc["B", "paid_1"] == 5_000.0
    assert h.loc["B", "invoiced_1"] == 0.0 and h.loc["B", "invoiced_2"] == 5_000.0
    assert h.loc["C", "delay_1"] == 0.0 and h.loc["C", "credit_limit"] == 0.0
    assert (h.loc["D", list(F.DELAY_COLUMNS)] == -2.0).all()
    X = F.party_payment_features(invoices, {"A": 5_000_000}, AS_OF)
    assert list(X.columns) == list(F.PAYMENT_FEATURES) and X.loc["A", "utilization_1"] == 0.2


def test_order_features() -> None:
    noon_ist = AS_OF + int(6.5 * 3600 * 1000)  # 06:30Z = 12:00 IST
    X = F.build_order_features(
        [7700, 11550], [7700, 7700], [1000, 50_000], [1000, 1000], [None, 99], noon_ist
    )
    assert list(X.columns) == list(F.ORDER_FEATURES)
    assert X.loc[0, "price_log_dev"] == 0.0 and X.loc[0, "qty_log_ratio"] == 0.0
    assert X.loc[1, "price_log_dev"] == pytest.approx(np.log(1.5))
    assert X.loc[1, "distance_log_km"] == pytest.approx(np.log(100))
    assert X.loc[0, "hour_cos"] == pytest.approx(-1.0) and X.loc[0, "hour_sin"] == pytest.approx(
        0.0, abs=1e-12
    )
    unknown = F.build_order_features([7700], [np.nan], [10], [np.nan])
    assert (unknown.to_numpy() == 0).all()


def test_as_matrix_checks_schema() -> None:
    X = F.build_order_features([1], [1], [1], [1])
    assert F.as_matrix(X[list(reversed(X.columns))], "order_anomaly").tolist() == X.to_numpy().tolist()
    with pytest.raises(ValueError, match="missing feature columns"):
        F.as_matrix(X.drop(columns=["hour_sin"]), "order_anomaly")
    with pytest.raises(ValueError, match="expected"):
        F.as_matrix(np.zeros((2, 3)), "order_anomaly")


def test_agmarknet_orders() -> None:
    ds = load_orders(sample=2000)
    assert ds.X.shape == (2000, len(F.ORDER_FEATURES))
    assert np.isfinite(ds.X.to_numpy()).all()
    assert ds.X["price_log_dev"].abs().median() < 0.1  # modal prices sit near their state median
