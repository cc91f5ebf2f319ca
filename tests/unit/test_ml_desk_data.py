"""Desk training rows (ml/desk_data.py): labels, censoring, the time-ordered split, and that a row's
features see only what was known when its invoice was issued."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ml import features as F
from ml.desk_data import DAY_MS, build_desk_rows, invoice_frame, labels

T0 = 1_760_000_000_000


def inv(
    i: int, party: str, issued_day: float, paid_after_due_days: float | None, terms: int = 30
) -> dict[str, Any]:
    issued = T0 + int(issued_day * DAY_MS)
    due = issued + terms * DAY_MS
    paid = None if paid_after_due_days is None else due + int(paid_after_due_days * DAY_MS)
    amount = 1_000_000 + i
    return {
        "invoice_id": f"INV-{i:03d}",
        "party_id": party,
        "invoiced_ts": issued,
        "due_ts": due,
        "amount": amount,
        "paid_ts": paid,
        "paid_amount": amount if paid is not None else 0,
    }


def test_labels_late_paid_unpaid_and_censored() -> None:
    rows = [inv(1, "A", 0, 5), inv(2, "A", 0, 31), inv(3, "A", 0, None), inv(4, "A", 80, None)]
    df = invoice_frame(rows)
    end = T0 + 100 * DAY_MS
    got = labels(df, 30, end).tolist()
    # paid 5 days late: 0; paid 31 days late: 1; unpaid 70 days past due: 1; unpaid, due at day 110: unknown
    assert got[:3] == [0.0, 1.0, 1.0] and np.isnan(got[3])


def _season() -> list[dict[str, Any]]:
    rows = []
    i = 0
    for day in range(0, 200, 10):
        for party, late in (("GOOD", 0), ("BAD", 45), ("MIX", 45 if day % 20 else 2)):
            i += 1
            rows.append(inv(i, party, day, late))
    return rows


def test_time_ordered_split_and_counts() -> None:
    rows = _season()
    d = build_desk_rows(rows, {"GOOD": 50_000_000}, late_days=30, holdout=0.3)
    assert d.info["invoices"] == 60 and d.info["labelled"] == 60 and d.info["parties"] == 3
    assert d.info["rows_train"] + d.info["rows_holdout"] == 60
    issued = {r["invoice_id"]: r["invoiced_ts"] for r in rows}
    assert max(issued[i] for i in d.X_train.index) < d.info["cut_ts"]
    assert min(issued[i] for i in d.X_holdout.index) >= d.info["cut_ts"]
    # the cut is the issue time of the first invoice past 70 %: index 42 of 60 in issue order
    assert d.info["cut_ts"] == T0 + 140 * DAY_MS
    assert (d.info["rows_train"], d.info["rows_holdout"]) == (42, 18)
    late = {r["invoice_id"]: int(r["paid_ts"] - r["due_ts"] > 30 * DAY_MS) for r in rows}
    assert d.y_holdout.tolist() == [late[i] for i in d.X_holdout.index]
    assert list(d.X_train.columns) == list(F.PAYMENT_FEATURES)
    assert len(d.sha256) == 64


def test_features_see_only_earlier_invoices() -> None:
    rows = _season()
    d = build_desk_rows(rows, {}, late_days=30, holdout=0.3)
    by_id = {r["invoice_id"]: r for r in rows}
    for iid in ("INV-002", "INV-032"):  # BAD's first invoice, then one at day 100
        r = by_id[iid]
        earlier = [x for x in rows if x["party_id"] == r["party_id"] and x["invoiced_ts"] < r["invoiced_ts"]]
        want = F.build_payment_features(
            F.history_from_invoices(earlier, {r["party_id"]: 0}, r["invoiced_ts"])
        )
        X = d.X_train if iid in d.X_train.index else d.X_holdout
        np.testing.assert_array_equal(X.loc[iid].to_numpy(), want.iloc[0].to_numpy())
    first = d.X_train.loc["INV-002"]
    assert first["delay_1"] == -2.0  # no history before the first invoice
    # at day 100 BAD has invoices 45 days late behind it: its status shows months overdue
    later = d.X_train.loc["INV-032"]
    assert later["delay_max"] >= 1.0


def test_single_class_side_is_refused() -> None:
    rows = [inv(i, "GOOD", i * 10, 1) for i in range(10)]
    with pytest.raises(ValueError, match="need both outcomes"):
        build_desk_rows(rows, {})


def test_empty_desk_is_refused() -> None:
    with pytest.raises(ValueError, match="no invoices"):
        build_desk_rows([], {})
