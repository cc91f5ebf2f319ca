"""Payment-default training rows from the desk's own settlement history (``ml_settlements``).

One row per invoice ``i`` of buyer ``p``, issued at ``t_i`` (epoch ms):

- **features**: :func:`ml.features.history_from_invoices` of ``p``'s invoices issued *before*
  ``t_i``, read at ``as_of = t_i`` (an invoice paid after ``t_i`` counts as unpaid, so nothing from
  the future leaks in), then :func:`ml.features.build_payment_features`: what the desk knew about
  the buyer when it raised the invoice, in the same columns as the UCI bootstrap;
- **label**: 1 when invoice ``i`` was not fully paid within ``late_days`` after its due date
  (``paid_ts - due_ts > late_days``, or still unpaid at ``as_of_end`` with ``as_of_end - due_ts >
  late_days``), else 0 (paid within ``late_days`` of due). An invoice still unpaid but less than
  ``late_days`` past due at ``as_of_end`` has no known outcome yet and is left out (censored).
  ``late_days`` defaults to the default grace period (30 days), so label 1 = the invoice defaulted.
- ``as_of_end``: the end of the observed history, by default the latest ``invoiced_ts`` or
  ``paid_ts`` in the data.

**Time-ordered split**: the labelled invoices in issue order ``(invoiced_ts, invoice_id)``; the cut
is the issue time ``t_cut`` of the first invoice past the ``1 - holdout`` fraction; invoices issued
before ``t_cut`` train, those issued at or after it are the hold-out ("the later invoices"). A buyer
can appear on both sides; its hold-out rows see its earlier invoices as history, as at serving time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import features as F

DAY_MS = 86_400_000
DEFAULT_LATE_DAYS = 30.0
DEFAULT_HOLDOUT = 0.3
INVOICE_COLUMNS = ("invoice_id", "party_id", "invoiced_ts", "due_ts", "amount", "paid_ts", "paid_amount")


@dataclass
class DeskRows:
    """The desk's training and hold-out rows: features (n, len(PAYMENT_FEATURES)) float64 with the
    invoice ids as index, labels (n,) int64, and what was built (counts, cut, hash spec)."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)


def invoice_frame(invoices: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Invoice rows (mappings with :data:`INVOICE_COLUMNS`; ``paid_ts`` None while unpaid) as a
    DataFrame in issue order. Raises ValueError when a column is missing."""
    df = pd.DataFrame(list(invoices), columns=list(INVOICE_COLUMNS))
    if len(invoices) and df[list(INVOICE_COLUMNS[:5])].isna().any().any():
        raise ValueError(f"invoice rows need {', '.join(INVOICE_COLUMNS)}")
    df["paid_ts"] = pd.to_numeric(df["paid_ts"], errors="coerce")
    return df.sort_values(["invoiced_ts", "invoice_id"], kind="stable").reset_index(drop=True)


def labels(df: pd.DataFrame, late_days: float, as_of_end: int) -> pd.Series:
    """Label per invoice (see the module doc): 1.0 late beyond ``late_days``, 0.0 paid within, NaN
    censored (unpaid, not yet ``late_days`` past due at ``as_of_end``)."""
    late_ms = late_days * DAY_MS
    paid = df["paid_ts"].notna()
    late_paid = (df["paid_ts"] - df["due_ts"]) > late_ms
    unpaid_late = (as_of_end - df["due_ts"]) > late_ms
    out = pd.Series(np.nan, index=df.index)
    out[paid] = late_paid[paid].astype("float64")
    out[~paid & unpaid_late] = 1.0
    return out


def _hash(df: pd.DataFrame, limits: Mapping[str, int], spec: str) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    h.update(repr(sorted(limits.items())).encode())
    h.update(spec.encode())
    return h.hexdigest()


def build_desk_rows(
    invoices: Sequence[Mapping[str, Any]],
    credit_limits: Mapping[str, int],
    *,
    late_days: float = DEFAULT_LATE_DAYS,
    holdout: float = DEFAULT_HOLDOUT,
    as_of_end: int | None = None,
) -> DeskRows:
    """Training and hold-out rows from every invoice of the desk (see the module doc).

    ``invoices``: mappings with :data:`INVOICE_COLUMNS` (paise, epoch ms); ``credit_limits``: party
    -> paise. Raises ValueError when fewer than two labelled invoices fall on either side of the cut
    or a side has a single class (ROC-AUC needs both).
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    df = invoice_frame(invoices)
    if df.empty:
        raise ValueError("no invoices in ml_settlements: run a season (tradedesk run / replay) first")
    end = int(
        as_of_end if as_of_end is not None else np.nanmax([df["invoiced_ts"].max(), df["paid_ts"].max()])
    )
    y_all = labels(df, late_days, end)
    known = df[y_all.notna()]
    n = len(known)
    cut_ts = int(known["invoiced_ts"].iloc[min(n - 1, int(n * (1.0 - holdout)))]) if n else 0
    rows: list[pd.DataFrame] = []
    for party, g in df.groupby("party_id", sort=False):
        limit = {str(party): int(credit_limits.get(str(party), 0))}
        for idx in g.index:
            if np.isnan(y_all[idx]):
                continue
            t = int(df.at[idx, "invoiced_ts"])
            earlier = g[g["invoiced_ts"] < t]
            hist = F.history_from_invoices(earlier, limit, t)
            feats = F.build_payment_features(hist)
            feats.index = pd.Index([df.at[idx, "invoice_id"]], name="invoice_id")
            rows.append(feats)
    X = pd.concat(rows) if rows else pd.DataFrame(columns=list(F.PAYMENT_FEATURES), dtype="float64")
    by_id = df.set_index("invoice_id")
    y = y_all.set_axis(df["invoice_id"]).loc[X.index].to_numpy(dtype="int64")
    issued = by_id.loc[X.index, "invoiced_ts"].to_numpy()
    train, hold = issued < cut_ts, issued >= cut_ts
    for name, mask in (("train", train), ("hold-out", hold)):
        if mask.sum() < 2 or len(set(y[mask].tolist())) < 2:
            raise ValueError(
                f"desk data: the {name} invoices need both outcomes (paid within {late_days:g} days of due"
                f" and not): {int(mask.sum())} rows, {int(y[mask].sum())} late; run a longer season"
            )
    info = {
        "data_source": "desk",
        "invoices": len(df),
        "labelled": int(n),
        "censored": int(len(df) - n),
        "parties": int(df["party_id"].nunique()),
        "rows_train": int(train.sum()),
        "rows_holdout": int(hold.sum()),
        "positives_train": int(y[train].sum()),
        "positives_holdout": int(y[hold].sum()),
        "cut_ts": cut_ts,
        "as_of_end": end,
        "late_days": late_days,
        "holdout": holdout,
    }
    sha = _hash(df, credit_limits, f"late_days={late_days};holdout={holdout};as_of_end={end}")
    return DeskRows(X[train], y[train], X[hold], y[hold], sha, info)
