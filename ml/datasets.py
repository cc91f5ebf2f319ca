"""Training data for the risk models, from the real files in ``data/`` and from PostgreSQL.

- :func:`load_credit` reads the UCI "default of credit card clients" file (UCI dataset 350, Yeh and
  Lien 2009; 30,000 rows, 22.12% positives) and maps it to payment-history features with
  :mod:`ml.features`.
- :func:`load_agmarknet_orders` turns Agmarknet mandi price/arrival rows into order-like records
  (one per market and day): price = modal price (Rs./Quintal = paise/kg), reference = median modal
  price of the commodity in that state over the file's window, quantity = arrivals (tonnes -> kg),
  typical size = the market's median arrival. Agmarknet has neither distances nor times of day, so
  those features are "unknown" (0) for these rows.
- :func:`load_pg_orders` reads the exchange's own orders from PostgreSQL (``orders`` projection of
  ``persistence/migrations/0001_core.sql``) into the same record shape.

Every loader returns a dataset hash (SHA-256 of the bytes read plus the sampling spec) that the
registry logs with each run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.core.regions import region_for_state
from ml import features as F

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
UCI_PATH = DATA_DIR / "credit_risk" / "uci_default_credit_card_clients.csv"
AGMARKNET_DIR = DATA_DIR / "agmarknet"


@dataclass
class Dataset:
    """Features ``X`` (n, d) float64 DataFrame, target ``y`` (n,) or None, and provenance."""

    X: pd.DataFrame
    y: np.ndarray | None
    sha256: str
    source: str
    info: dict[str, Any] = field(default_factory=dict)


def _hash(paths: list[Path], extra: str = "") -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.read_bytes())
    h.update(extra.encode())
    return h.hexdigest()


def _stratified_sample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified sample of ``n`` rows (class ratios preserved), sorted."""
    rng = np.random.default_rng(seed)
    idx: list[np.ndarray] = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        k = round(n * len(members) / len(y))
        idx.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(idx))


def load_credit_raw(path: str | Path | None = None, sample: int | None = None, seed: int = 42):
    """UCI rows as raw history (n, 19) plus target (n,) int and the dataset hash."""
    p = Path(path) if path else UCI_PATH
    df = pd.read_csv(p)
    if F.UCI_TARGET not in df.columns:
        raise ValueError(f"{p}: no {F.UCI_TARGET!r} column")
    y = df[F.UCI_TARGET].to_numpy(dtype="int64")
    history = F.uci_to_history(df)
    if sample is not None and sample < len(df):
        idx = _stratified_sample(y, sample, seed)
        history, y = history.iloc[idx].reset_index(drop=True), y[idx]
    return history, y, _hash([p], f"sample={sample};seed={seed}"), str(p)


def load_credit(path: str | Path | None = None, sample: int | None = None, seed: int = 42) -> Dataset:
    """Payment-default dataset: X (n, 31) payment features, y (n,) 1 = defaulted next month."""
    history, y, sha, src = load_credit_raw(path, sample, seed)
    X = F.build_payment_features(history)
    return Dataset(X, y, sha, src, {"rows": len(X), "positive_rate": float(y.mean())})


def load_credit_limit(path: str | Path | None = None, sample: int | None = None, seed: int = 42) -> Dataset:
    """Credit-limit dataset: X (n, 28) history features without the limit, y (n,) credit limit
    (major currency units; NT$ in the UCI data)."""
    history, _, sha, src = load_credit_raw(path, sample, seed)
    X = F.build_credit_limit_features(history)
    y = history["credit_limit"].to_numpy(dtype="float64")
    return Dataset(X, y, sha, src, {"rows": len(X), "target_mean": float(y.mean())})


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(str).str.replace(",", "", regex=False), errors="coerce")


def _region_of(state: str) -> str:
    return region_for_state(state) or state.strip().lower()


def agmarknet_records(paths: list[Path]) -> pd.DataFrame:
    """Order-like records from Agmarknet CSVs.

    Columns: ``commodity`` (lower case), ``region`` (ISO 3166-2 when known), ``market``, ``price``
    and ``ref_price`` (paise/kg), ``quantity_kg``, ``typical_qty_kg`` (kg), ``distance_km`` and
    ``ts_ms`` (NaN: not in the source).
    """
    frames = []
    for p in paths:
        df = pd.read_csv(p, dtype=str)
        frames.append(
            pd.DataFrame(
                {
                    "commodity": df["Commodity"].str.strip().str.lower(),
                    "state": df["State"].str.strip(),
                    "market": df["Market"].str.strip(),
                    "price": _num(df["Modal Price"]),
                    "quantity_kg": _num(df["Arrival Quantity"]) * 1000.0,
                }
            )
        )
    rec = pd.concat(frames, ignore_index=True)
    rec = rec[(rec["price"] > 0) & (rec["quantity_kg"] > 0)].reset_index(drop=True)
    regions = {s: _region_of(s) for s in rec["state"].unique()}
    rec["region"] = rec["state"].map(regions)
    rec["ref_price"] = rec.groupby(["commodity", "region"])["price"].transform("median")
    rec["typical_qty_kg"] = rec.groupby(["commodity", "market"])["quantity_kg"].transform("median")
    rec["distance_km"] = np.nan
    rec["ts_ms"] = np.nan
    return rec.drop(columns=["state"])


def load_pg_orders(dsn: str, limit: int = 200_000) -> pd.DataFrame:
    """The exchange's orders from PostgreSQL as order-like records (same columns as
    :func:`agmarknet_records`). Reference price: median price of the commodity/region's orders;
    typical size: the party's median order quantity; distance: ``doc->>'max_distance_km'`` when the
    order document carries one. Returns an empty frame when the table is missing or empty."""
    import psycopg2

    sql = (
        "SELECT commodity, region, party_id, price, quantity_kg, created_ts,"
        " (doc->>'max_distance_km')::float8 AS distance_km FROM orders"
        " ORDER BY created_ts DESC NULLS LAST LIMIT %s"
    )
    try:
        conn = psycopg2.connect(dsn)
    except Exception:
        return pd.DataFrame()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, (limit,))
            rows = cur.fetchall()
    except Exception:
        return pd.DataFrame()
    finally:
        conn.close()
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(
        rows, columns=["commodity", "region", "market", "price", "quantity_kg", "ts_ms", "distance_km"]
    )
    for c in ("price", "quantity_kg", "ts_ms", "distance_km"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["ref_price"] = df.groupby(["commodity", "region"])["price"].transform("median")
    df["typical_qty_kg"] = df.groupby("market")["quantity_kg"].transform("median")
    return df


def load_orders(
    paths: list[str | Path] | str | Path | None = None,
    dsn: str | None = None,
    sample: int | None = None,
    seed: int = 42,
) -> Dataset:
    """Order-anomaly dataset: X (n, 5) order features from Agmarknet files (a CSV file, a directory
    of them, or a list) plus, when ``dsn`` is given, the exchange's orders in PostgreSQL."""
    if paths is None:
        files = sorted(AGMARKNET_DIR.glob("*.csv"))
    else:
        items = [paths] if isinstance(paths, str | Path) else list(paths)
        files = []
        for item in items:
            p = Path(item)
            files.extend(sorted(p.glob("*.csv")) if p.is_dir() else [p])
    if not files:
        raise ValueError("no Agmarknet CSV files found")
    rec = agmarknet_records(files)
    n_pg = 0
    if dsn:
        pg = load_pg_orders(dsn)
        n_pg = len(pg)
        if n_pg:
            rec = pd.concat([rec, pg[rec.columns.intersection(pg.columns)]], ignore_index=True)
    if sample is not None and sample < len(rec):
        rec = rec.sample(n=sample, random_state=seed).reset_index(drop=True)
    X = F.build_order_features(
        rec["price"],
        rec["ref_price"],
        rec["quantity_kg"],
        rec["typical_qty_kg"],
        rec["distance_km"],
        rec["ts_ms"],
    )
    sha = _hash(files, f"sample={sample};seed={seed};pg_rows={n_pg}")
    info = {"rows": len(X), "agmarknet_files": [f.name for f in files], "pg_rows": n_pg}
    return Dataset(X, None, sha, ",".join(str(f) for f in files), info)
