"""The one feature builder shared by training and serving.

Two families of features:

**Payment history** (payment-default classifier, suggested-credit-limit regressor). A counterparty's
trade-credit history over the last six 30-day months, month 1 being the most recent:

==================  ===================================================================  ==============
column              meaning                                                              UCI column
==================  ===================================================================  ==============
``credit_limit``    credit line granted to the counterparty                              ``LIMIT_BAL``
``delay_k``         repayment status at the end of month k: -2 no activity, -1 paid in   ``PAY_0``,
                    full, 0 outstanding but not overdue, n >= 1 oldest invoice overdue   ``PAY_2..6``
                    by n months (capped at 9)
``invoiced_k``      outstanding invoiced balance at the end of month k                   ``BILL_AMTk``
``paid_k``          payments received during month k                                     ``PAY_AMTk``
==================  ===================================================================  ==============

The mapping follows the UCI "default of credit card clients" dataset (UCI dataset 350; Yeh and Lien,
2009, *Expert Systems with Applications* 36(2)), whose columns are exactly a credit line, six monthly
repayment statuses, six statement balances and six payments. Its demographic columns (sex, education,
marriage, age) have no counterpart for a trading firm and are not used.

Amounts are in **major currency units**: New Taiwan dollars in the UCI data, rupees for live parties
(paise / 100). The two currencies differ (about 2.6 Rs per NT$ in 2005), so the scale-free ratio
features (utilization, payment ratios) carry most of the transfer; absolute amounts are kept because
they are what the published models use.

For live parties, :func:`history_from_invoices` turns invoice/settlement rows (from PostgreSQL,
table ``ml_settlements``, see ``persistence/migrations/0004_ml.sql``) into the same raw history, and
:func:`build_payment_features` derives the model features from it, identically for both sources.

**Order anomaly** (IsolationForest): per order, ``price_log_dev = ln(price / market reference)``
(reference: median price for the commodity and region, paise/kg), ``qty_log_ratio = ln(quantity /
party's typical quantity)`` (kg / kg), ``distance_log_km = ln(1 + distance km)``, and the hour of
day in India Standard Time (UTC+05:30) on the unit circle (``hour_sin``, ``hour_cos``).

All builders return ``pandas.DataFrame`` of ``float64`` with columns in the order of the matching
``*_FEATURES`` tuple; models are fitted on, and served with, exactly these columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

MONTHS = 6
MONTH_MS = 30 * 24 * 3600 * 1000  # one "month" of history: 30 days, in epoch milliseconds
IST_OFFSET_MS = int(5.5 * 3600 * 1000)  # India Standard Time, UTC+05:30
MAX_DELAY = 9  # UCI codes delays of 9 months and more as 9

DELAY_COLUMNS = tuple(f"delay_{k}" for k in range(1, MONTHS + 1))
INVOICED_COLUMNS = tuple(f"invoiced_{k}" for k in range(1, MONTHS + 1))
PAID_COLUMNS = tuple(f"paid_{k}" for k in range(1, MONTHS + 1))

#: Raw trade-credit history, one row per counterparty.
HISTORY_COLUMNS: tuple[str, ...] = ("credit_limit", *DELAY_COLUMNS, *INVOICED_COLUMNS, *PAID_COLUMNS)

#: UCI dataset 350 column -> raw history column.
UCI_COLUMN_MAP: dict[str, str] = {
    "LIMIT_BAL": "credit_limit",
    "PAY_0": "delay_1",
    **{f"PAY_{k}": f"delay_{k}" for k in range(2, MONTHS + 1)},
    **{f"BILL_AMT{k}": f"invoiced_{k}" for k in range(1, MONTHS + 1)},
    **{f"PAY_AMT{k}": f"paid_{k}" for k in range(1, MONTHS + 1)},
}
UCI_TARGET = "default.payment.next.month"

_DERIVED_WITH_LIMIT = ("utilization_1", "utilization_mean")
_DERIVED = (
    "delay_max",
    "months_delayed",
    "invoiced_mean",
    "paid_mean",
    "pay_ratio",
    *(f"paid_vs_prev_invoice_{k}" for k in range(1, MONTHS)),
)

#: Features of the payment-default classifier.
PAYMENT_FEATURES: tuple[str, ...] = (*HISTORY_COLUMNS, *_DERIVED_WITH_LIMIT, *_DERIVED)

#: Features of the suggested-credit-limit regressor: the payment history without anything that
#: contains the credit limit itself (the target).
CREDIT_LIMIT_FEATURES: tuple[str, ...] = tuple(
    f for f in PAYMENT_FEATURES if f != "credit_limit" and f not in _DERIVED_WITH_LIMIT
)

#: Features of the order-anomaly model.
ORDER_FEATURES: tuple[str, ...] = (
    "price_log_dev",
    "qty_log_ratio",
    "distance_log_km",
    "hour_sin",
    "hour_cos",
)

#: Model name -> its feature list. The registry refuses to promote a model whose recorded feature
#: list differs from this (feature-schema gate).
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    "payment_default": PAYMENT_FEATURES,
    "order_anomaly": ORDER_FEATURES,
    "credit_limit": CREDIT_LIMIT_FEATURES,
}


def feature_names(model: str) -> list[str]:
    """Feature names (in column order) that ``model`` is trained and served on."""
    try:
        return list(MODEL_FEATURES[model])
    except KeyError:
        raise ValueError(f"unknown model {model!r}: use one of {sorted(MODEL_FEATURES)}") from None


# ---------------------------------------------------------------------------------------- payment


def uci_to_history(df: pd.DataFrame) -> pd.DataFrame:
    """Rename UCI dataset 350 columns to the raw history columns. Returns (n, 19) float64."""
    missing = [c for c in UCI_COLUMN_MAP if c not in df.columns]
    if missing:
        raise ValueError(f"not a UCI credit-card file: missing columns {missing}")
    out = df[list(UCI_COLUMN_MAP)].rename(columns=UCI_COLUMN_MAP).astype("float64")
    return out[list(HISTORY_COLUMNS)]


def build_payment_features(history: pd.DataFrame) -> pd.DataFrame:
    """Payment-history features from raw history rows.

    ``history``: (n, >=19) with :data:`HISTORY_COLUMNS` (amounts in major currency units, delays
    in months on the UCI scale). Returns (n, len(PAYMENT_FEATURES)) float64, index preserved.
    """
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing columns {missing}")
    h = history[list(HISTORY_COLUMNS)].astype("float64")
    limit = h["credit_limit"].to_numpy()
    delays = h[list(DELAY_COLUMNS)].to_numpy()
    invoiced = h[list(INVOICED_COLUMNS)].to_numpy()
    paid = h[list(PAID_COLUMNS)].to_numpy()
    safe_limit = np.where(limit > 0, limit, 1.0)
    out = h.copy()
    out["utilization_1"] = invoiced[:, 0] / safe_limit
    out["utilization_mean"] = invoiced.mean(axis=1) / safe_limit
    out["delay_max"] = delays.max(axis=1)
    out["months_delayed"] = (delays > 0).sum(axis=1).astype("float64")
    out["invoiced_mean"] = invoiced.mean(axis=1)
    out["paid_mean"] = paid.mean(axis=1)
    billed = np.clip(invoiced, 0.0, None).sum(axis=1)
    out["pay_ratio"] = np.clip(paid.sum(axis=1) / np.maximum(billed, 1.0), 0.0, 10.0)
    for k in range(1, MONTHS):
        # payment made in month k against the balance invoiced at the end of month k+1
        prev = invoiced[:, k]
        ratio = np.where(prev > 0, paid[:, k - 1] / np.where(prev > 0, prev, 1.0), 1.0)
        out[f"paid_vs_prev_invoice_{k}"] = np.clip(ratio, 0.0, 10.0)
    return out[list(PAYMENT_FEATURES)].astype("float64")


def build_credit_limit_features(history: pd.DataFrame) -> pd.DataFrame:
    """Features of the credit-limit regressor: (n, len(CREDIT_LIMIT_FEATURES)) float64."""
    return build_payment_features(history)[list(CREDIT_LIMIT_FEATURES)]


def history_from_invoices(
    invoices: pd.DataFrame | Iterable[Mapping[str, Any]],
    credit_limits: Mapping[str, int],
    as_of_ts: int,
) -> pd.DataFrame:
    """Raw history (UCI-shaped) of live parties from their invoice and settlement rows.

    ``invoices`` rows: ``party_id`` (the buyer who owes), ``invoiced_ts`` and ``due_ts`` (epoch ms),
    ``amount`` (paise), ``paid_ts`` (epoch ms or None/NaN when unpaid) and ``paid_amount`` (paise).
    ``credit_limits``: party -> credit limit in paise. ``as_of_ts``: end of month 1 (epoch ms);
    month k covers ``(as_of - k*30d, as_of - (k-1)*30d]``.

    Per month: ``invoiced_k`` is the balance outstanding at the month's end (invoiced before it, not
    yet paid by then; a payment counts in full at ``paid_ts``), ``paid_k`` the payments inside the
    month, ``delay_k`` the UCI status of the oldest overdue invoice at the month's end (-2 when the
    party had neither balance nor activity, -1 when everything invoiced had been paid, 0 when a
    balance is outstanding but not due). Amounts are returned in rupees (paise / 100).
    Returns (n_parties, 19) float64 indexed by ``party_id`` (every party of ``credit_limits`` and of
    ``invoices``; a party with no rows gets the "no activity" history).
    """
    inv = invoices if isinstance(invoices, pd.DataFrame) else pd.DataFrame(list(invoices))
    cols = ["party_id", "invoiced_ts", "due_ts", "amount", "paid_ts", "paid_amount"]
    if inv.empty:
        inv = pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).astype({"party_id": object})
    missing = [c for c in cols if c not in inv.columns]
    if missing:
        raise ValueError(f"invoice rows are missing columns {missing}")
    parties = sorted(set(credit_limits) | set(inv["party_id"].astype(str)))
    rows: list[dict[str, float]] = []
    by_party = {str(p): g for p, g in inv.groupby(inv["party_id"].astype(str))} if len(inv) else {}
    for party in parties:
        g = by_party.get(party)
        row: dict[str, float] = {"credit_limit": float(credit_limits.get(party, 0)) / 100.0}
        for k in range(1, MONTHS + 1):
            end = as_of_ts - (k - 1) * MONTH_MS
            start = end - MONTH_MS
            if g is None or g.empty:
                row[f"invoiced_{k}"] = 0.0
                row[f"paid_{k}"] = 0.0
                row[f"delay_{k}"] = -2.0
                continue
            invoiced_ts = g["invoiced_ts"].to_numpy(dtype="float64")
            due_ts = g["due_ts"].to_numpy(dtype="float64")
            amount = g["amount"].to_numpy(dtype="float64")
            paid_ts = pd.to_numeric(g["paid_ts"], errors="coerce").to_numpy(dtype="float64")
            paid_amt = pd.to_numeric(g["paid_amount"], errors="coerce").fillna(0.0).to_numpy("float64")
            issued = invoiced_ts <= end
            paid_by_end = issued & ~np.isnan(paid_ts) & (paid_ts <= end)
            remaining = np.where(paid_by_end, np.clip(amount - paid_amt, 0.0, None), amount)
            open_mask = issued & (remaining > 0)
            outstanding = float(remaining[issued].sum())
            paid_in_month = ~np.isnan(paid_ts) & (paid_ts > start) & (paid_ts <= end)
            active = bool((issued & (invoiced_ts > start)).any() or paid_in_month.any())
            overdue = open_mask & (due_ts < end)
            if overdue.any():
                months_late = np.ceil((end - due_ts[overdue].min()) / MONTH_MS)
                delay = float(min(max(months_late, 1.0), MAX_DELAY))
            elif open_mask.any():
                delay = 0.0
            else:
                delay = -1.0 if active else -2.0
            row[f"invoiced_{k}"] = outstanding / 100.0
            row[f"paid_{k}"] = float(paid_amt[paid_in_month].sum()) / 100.0
            row[f"delay_{k}"] = delay
        rows.append(row)
    out = pd.DataFrame(rows, index=pd.Index(parties, name="party_id"), columns=list(HISTORY_COLUMNS))
    return out.astype("float64")


def no_payment_history(features: pd.DataFrame) -> np.ndarray:
    """(n,) bool: rows with no payment history at all (every ``delay_k`` -2 "no activity", nothing
    invoiced or paid), e.g. a live party that has never been invoiced. The serving side gives these
    the prior of :mod:`ml.serving` instead of a model score (docs/risk.md, "Parties without history")."""
    delays = features[list(DELAY_COLUMNS)].to_numpy(dtype="float64")
    amounts = features[[*INVOICED_COLUMNS, *PAID_COLUMNS]].to_numpy(dtype="float64")
    return np.asarray((delays == -2.0).all(axis=1) & (amounts == 0.0).all(axis=1))


def party_payment_features(
    invoices: pd.DataFrame | Iterable[Mapping[str, Any]],
    credit_limits: Mapping[str, int],
    as_of_ts: int,
) -> pd.DataFrame:
    """Payment-default features of live parties: ``build_payment_features(history_from_invoices(...))``.

    Returns (n_parties, len(PAYMENT_FEATURES)) float64 indexed by ``party_id``.
    """
    return build_payment_features(history_from_invoices(invoices, credit_limits, as_of_ts))


# ------------------------------------------------------------------------------------------ orders


def build_order_features(
    price: Any,
    ref_price: Any,
    quantity_kg: Any,
    typical_qty_kg: Any,
    distance_km: Any = None,
    ts_ms: Any = None,
) -> pd.DataFrame:
    """Order-anomaly features, vectorised over n orders.

    ``price`` and ``ref_price``: paise/kg (the market reference for the commodity and region);
    ``quantity_kg`` and ``typical_qty_kg`` (the party's median order size): kg; ``distance_km``: km
    between the parties, None/NaN = unknown (0); ``ts_ms``: epoch milliseconds UTC, None/NaN =
    unknown (hour features 0, the centre of the circle). Non-positive references or typical sizes
    give a zero deviation. Returns (n, 5) float64 with columns :data:`ORDER_FEATURES`.
    """
    p = np.atleast_1d(np.asarray(price, dtype="float64"))
    n = p.shape[0]

    def _arr(v: Any, fill: float) -> np.ndarray:
        if v is None:
            return np.full(n, fill)
        a = np.broadcast_to(np.atleast_1d(np.asarray(v, dtype="float64")), (n,)).copy()
        a[np.isnan(a)] = fill
        return a

    ref = _arr(ref_price, np.nan)
    qty = _arr(quantity_kg, np.nan)
    typ = _arr(typical_qty_kg, np.nan)
    dist = _arr(distance_km, 0.0)
    ok_p = (p > 0) & (ref > 0)
    ok_q = (qty > 0) & (typ > 0)
    price_dev = np.zeros(n)
    price_dev[ok_p] = np.log(p[ok_p] / ref[ok_p])
    qty_ratio = np.zeros(n)
    qty_ratio[ok_q] = np.log(qty[ok_q] / typ[ok_q])
    hour_sin = np.zeros(n)
    hour_cos = np.zeros(n)
    if ts_ms is not None:
        ts = _arr(ts_ms, np.nan)
        known = ~np.isnan(ts)
        hours = ((ts[known] + IST_OFFSET_MS) % (24 * 3600 * 1000)) / 3_600_000.0
        hour_sin[known] = np.sin(2 * np.pi * hours / 24.0)
        hour_cos[known] = np.cos(2 * np.pi * hours / 24.0)
    return pd.DataFrame(
        {
            "price_log_dev": price_dev,
            "qty_log_ratio": qty_ratio,
            "distance_log_km": np.log1p(np.clip(dist, 0.0, None)),
            "hour_sin": hour_sin,
            "hour_cos": hour_cos,
        },
        columns=list(ORDER_FEATURES),
    )


def as_matrix(X: Any, model: str) -> np.ndarray:
    """Features of ``model`` as a float64 (n, d) matrix in the model's column order.

    ``X``: a DataFrame with (at least) the model's feature columns, in any order, or an array-like
    already in :func:`feature_names` order. A 1-D input is one row.
    """
    names = feature_names(model)
    if isinstance(X, pd.DataFrame):
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"{model}: missing feature columns {missing}")
        return X[names].to_numpy(dtype="float64")
    a = np.asarray(X, dtype="float64")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != len(names):
        raise ValueError(f"{model}: expected (n, {len(names)}) features, got shape {a.shape}")
    return a
