"""Training data for the risk models, from the real files in ``data/`` and from PostgreSQL.

- :func:`load_credit` reads the UCI "default of credit card clients" file (UCI dataset 350, Yeh and
  Lien 2009; 30,000 rows, 22.12% positives) and maps it to payment-history features with
  :mod:`ml.features`.
- :func:`agmarknet_records` turns Agmarknet mandi price/arrival rows into order-like records
  (one per market and day): price = modal price (Rs./Quintal = paise/kg), reference = median modal
  price of the commodity in that state over the file's window, quantity = arrivals (kg, as the one
  Agmarknet reader :mod:`persistence.agmarknet` converts them),
  typical size = the market's median arrival. Agmarknet has neither distances nor times of day, so
  those features are "unknown" (0) for these rows.
- :func:`load_desk` reads the desk's own invoices (``ml_settlements``) and party credit limits from
  PostgreSQL and builds time-split payment-default rows (:mod:`ml.desk_data`).
- :func:`load_pg_orders` reads the exchange's own orders from PostgreSQL (``orders`` projection, read
  by :mod:`persistence.risk_reads`) into the same record shape.

A file of another shape raises :class:`DataShapeError`, one line naming the missing columns and the
expected layout (the CLI prints it and exits with code 2).

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
from ml.desk_data import DEFAULT_HOLDOUT, DEFAULT_LATE_DAYS, DeskRows, build_desk_rows
from persistence import risk_reads
from persistence.agmarknet import AgmarknetFormatError, MarketRow, read_file

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
UCI_PATH = DATA_DIR / "credit_risk" / "uci_default_credit_card_clients.csv"
AGMARKNET_DIR = DATA_DIR / "agmarknet"


#: The layout a payment-default / credit-limit training file must have (one line, for errors).
UCI_LAYOUT = (
    "the UCI 'default of credit card clients' layout (dataset 350): LIMIT_BAL, PAY_0, PAY_2..PAY_6, "
    f"BILL_AMT1..BILL_AMT6, PAY_AMT1..PAY_AMT6 and {F.UCI_TARGET!r}, one row per client"
)
UCI_REQUIRED: tuple[str, ...] = (*F.UCI_COLUMN_MAP, F.UCI_TARGET)


class DataShapeError(ValueError):
    """A training file does not have the expected layout; the message is one line naming the file,
    what is missing and the layout expected."""


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


def _read_uci(p: Path, nrows: int | None = None) -> pd.DataFrame:
    """The CSV at ``p`` (``nrows`` rows; 0: the header only) after checking the UCI columns."""
    try:
        df = pd.read_csv(p, nrows=nrows)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataShapeError(f"{p}: not a CSV table ({type(exc).__name__}); expected {UCI_LAYOUT}") from None
    missing = [c for c in UCI_REQUIRED if c not in df.columns]
    if missing:
        raise DataShapeError(f"{p}: missing columns {', '.join(missing)}; expected {UCI_LAYOUT}")
    return df


def load_credit_raw(
    path: str | Path | None = None, sample: int | None = None, seed: int = 42
) -> tuple[pd.DataFrame, np.ndarray, str, str]:
    """UCI rows as raw history (n, 19) plus target (n,) int, the dataset hash and the source path.

    Raises:
        DataShapeError: the file is not a CSV table with the :data:`UCI_LAYOUT` columns, or holds
            non-numeric values in them.
        OSError: the file cannot be read.
    """
    p = Path(path) if path else UCI_PATH
    df = _read_uci(p)
    try:
        y = df[F.UCI_TARGET].to_numpy(dtype="int64")
        history = F.uci_to_history(df)
    except (ValueError, TypeError) as exc:
        raise DataShapeError(f"{p}: non-numeric values ({exc}); expected {UCI_LAYOUT}") from None
    if sample is not None and sample < len(df):
        idx = _stratified_sample(y, sample, seed)
        history, y = history.iloc[idx].reset_index(drop=True), y[idx]
    return history, y, _hash([p], f"sample={sample};seed={seed}"), str(p)


def load_credit(path: str | Path | None = None, sample: int | None = None, seed: int = 42) -> Dataset:
    """Payment-default dataset: X (n, 31) payment features, y (n,) 1 = defaulted next month."""
    history, y, sha, src = load_credit_raw(path, sample, seed)
    X = F.build_payment_features(history)
    return Dataset(X, y, sha, src, {"data_source": "uci", "rows": len(X), "positive_rate": float(y.mean())})


def load_desk(
    dsn: str,
    *,
    late_days: float = DEFAULT_LATE_DAYS,
    holdout: float = DEFAULT_HOLDOUT,
    as_of_end: int | None = None,
) -> DeskRows:
    """The desk's payment-default rows from PostgreSQL (``ml_settlements`` + ``parties``), split in
    time (:func:`ml.desk_data.build_desk_rows`).

    Raises:
        DataShapeError: no invoices, or too few of each outcome on a side of the split (one line).
        OSError: the database cannot be reached.
    """
    invoices, limits = risk_reads.run_sync(dsn, risk_reads.desk_settlements)
    rows = [{"invoice_id": inv, **row} for inv, row in invoices]
    try:
        return build_desk_rows(rows, limits, late_days=late_days, holdout=holdout, as_of_end=as_of_end)
    except ValueError as exc:
        raise DataShapeError(str(exc)) from None


def load_credit_limit(path: str | Path | None = None, sample: int | None = None, seed: int = 42) -> Dataset:
    """Credit-limit dataset: X (n, 28) history features without the limit, y (n,) credit limit
    (major currency units; NT$ in the UCI data)."""
    history, _, sha, src = load_credit_raw(path, sample, seed)
    X = F.build_credit_limit_features(history)
    y = history["credit_limit"].to_numpy(dtype="float64")
    return Dataset(X, y, sha, src, {"data_source": "uci", "rows": len(X), "target_mean": float(y.mean())})


def _region_of(state: str) -> str:
    return region_for_state(state) or state.strip().lower()


def _market_frame(rows: list[MarketRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "commodity": [r.commodity for r in rows],
            "state": [r.state for r in rows],
            "market": [r.market for r in rows],
            "price": np.array([r.modal_price for r in rows], dtype="float64"),
            "quantity_kg": np.array([r.arrivals_kg for r in rows], dtype="float64"),
        }
    )


def agmarknet_records(paths: list[Path]) -> pd.DataFrame:
    """Order-like records from Agmarknet CSVs, read by the one reader :func:`persistence.agmarknet.read_file`.

    Columns: ``commodity`` (registry name), ``region`` (ISO 3166-2 when known), ``market``, ``price``
    and ``ref_price`` (paise/kg), ``quantity_kg``, ``typical_qty_kg`` (kg), ``distance_km`` and
    ``ts_ms`` (NaN: not in the source).

    Raises:
        DataShapeError: a file is not an Agmarknet layout (the reader's message, one line).
    """
    frames = []
    for p in paths:
        try:
            rows, _ = read_file(p)
        except AgmarknetFormatError as exc:
            raise DataShapeError(str(exc)) from None
        frames.append(_market_frame(rows))
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
    """The exchange's orders from PostgreSQL (:func:`persistence.risk_reads.training_orders`) as
    order-like records (same columns as :func:`agmarknet_records`). Reference price: median price
    of the commodity/region's orders; typical size: the party's median order quantity; distance: the
    order's maximum distance when it has one. Empty when the server, the table or the rows are missing."""
    try:
        rows = risk_reads.run_sync(dsn, risk_reads.training_orders, limit)
    except Exception:
        return pd.DataFrame()
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(
        [
            (o.commodity, o.region, o.party_id, o.price, o.quantity_kg, o.created_ts, o.distance_km)
            for o in rows
        ],
        columns=["commodity", "region", "market", "price", "quantity_kg", "ts_ms", "distance_km"],
    )
    for c in ("price", "quantity_kg", "ts_ms", "distance_km"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["ref_price"] = df.groupby(["commodity", "region"])["price"].transform("median")
    df["typical_qty_kg"] = df.groupby("market")["quantity_kg"].transform("median")
    return df


def agmarknet_files(paths: list[str | Path] | str | Path | None = None) -> list[Path]:
    """The CSV files of ``paths`` (a file, a directory of them, or a list; None: the shipped
    ``data/agmarknet``). Raises :class:`DataShapeError` when there are none."""
    if paths is None:
        files = sorted(AGMARKNET_DIR.glob("*.csv"))
    else:
        items = [paths] if isinstance(paths, str | Path) else list(paths)
        files = []
        for item in items:
            p = Path(item)
            files.extend(sorted(p.glob("*.csv")) if p.is_dir() else [p])
    if not files:
        raise DataShapeError("no Agmarknet CSV files found; expected Agmarknet price/arrival CSV files")
    return files


def check_data(model: str, data: list[str | Path] | str | Path | None = None) -> None:
    """Check that ``data`` has the layout ``model`` trains on, before any training starts: UCI
    columns (header only) for ``payment_default`` / ``credit_limit``, an Agmarknet layout for
    ``order_anomaly``.

    Raises:
        DataShapeError: one line naming the file, what is missing and the layout expected.
        OSError: a file cannot be read (e.g. FileNotFoundError).
    """
    if model == "order_anomaly":
        for f in agmarknet_files(data):
            try:
                read_file(f)
            except AgmarknetFormatError as exc:
                raise DataShapeError(str(exc)) from None
        return
    items = [data] if isinstance(data, str | Path) else list(data or [])
    _read_uci(Path(items[0]) if items else UCI_PATH, nrows=0)


def load_orders(
    paths: list[str | Path] | str | Path | None = None,
    dsn: str | None = None,
    sample: int | None = None,
    seed: int = 42,
) -> Dataset:
    """Order-anomaly dataset: X (n, 5) order features from Agmarknet files (a CSV file, a directory
    of them, or a list) plus, when ``dsn`` is given, the exchange's orders in PostgreSQL."""
    files = agmarknet_files(paths)
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
    info = {
        "data_source": "agmarknet+desk" if n_pg else "agmarknet",
        "rows": len(X),
        "agmarknet_files": [f.name for f in files],
        "pg_rows": n_pg,
    }
    return Dataset(X, None, sha, ",".join(str(f) for f in files), info)
