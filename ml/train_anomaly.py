"""``order_anomaly``: IsolationForest over order features (see :mod:`ml.train`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import datasets as D
from ml import features as F
from ml.train_common import (
    HOLDOUT,
    IFOREST_PARAMS,
    SEED,
    Progress,
    TrainResult,
    _fit_iforest,
    _get,
    _noop,
    _run,
    ensure_ray,
)
from ml.train_plots import _plot_dir


def perturb_orders(X: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Synthetic anomalies: each row gets one of price x1.5, price x0.6 or quantity x25."""
    rng = np.random.default_rng(seed)
    out = X.copy()
    kind = rng.integers(0, 3, size=len(X))
    out.loc[kind == 0, "price_log_dev"] += np.log(1.5)
    out.loc[kind == 1, "price_log_dev"] += np.log(0.6)
    out.loc[kind == 2, "qty_log_ratio"] += np.log(25.0)
    return out


def anomaly_scores(model: Any, X: Any) -> np.ndarray:
    """IsolationForest anomaly score in (0, 1], higher = more anomalous: ``-score_samples``."""
    return np.clip(-model.score_samples(F.as_matrix(X, "order_anomaly")), 0.0, 1.0)


def train_order_anomaly(
    data: str | Path | list[str | Path] | None = None,
    *,
    dsn: str | None = None,
    sample: int | None = None,
    seed: int = SEED,
    engine: str = "ray-task",
    progress: Progress = _noop,
    ray_address: str | None = None,
) -> TrainResult:
    """IsolationForest on order features; metrics: hold-out score quantiles, share above 0.6, and
    ``synthetic_auc`` (see module doc)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    t0 = time.perf_counter()
    ds = D.load_orders(data, dsn=dsn, sample=sample, seed=seed)
    progress(f"data: {ds.info['rows']} orders ({ds.info['pg_rows']} from PostgreSQL)")
    Xtr, Xte = train_test_split(ds.X, test_size=HOLDOUT, random_state=seed)
    if engine != "local":
        ensure_ray(ray_address)
    model = _get(engine, _run(engine, _fit_iforest, Xtr.to_numpy(), IFOREST_PARAMS, seed, 1))
    s_real = anomaly_scores(model, Xte)
    s_fake = anomaly_scores(model, perturb_orders(Xte, seed))
    y = np.r_[np.zeros(len(s_real)), np.ones(len(s_fake))]
    metrics = {
        "synthetic_auc": float(roc_auc_score(y, np.r_[s_real, s_fake])),
        "score_p50": float(np.quantile(s_real, 0.5)),
        "score_p99": float(np.quantile(s_real, 0.99)),
        "share_above_0_6": float(np.mean(s_real > 0.6)),
        "n_train": float(len(Xtr)),
        "n_holdout": float(len(Xte)),
    }
    out = _plot_dir()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(s_real, bins=50, alpha=0.6, label="hold-out orders")
    ax.hist(s_fake, bins=50, alpha=0.6, label="perturbed (synthetic)")
    ax.set(xlabel="anomaly score", ylabel="orders", title="IsolationForest scores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=90)
    plt.close(fig)
    wall = time.perf_counter() - t0
    metrics["train_wall_s"] = wall
    return TrainResult(
        "order_anomaly",
        model,
        metrics,
        {**IFOREST_PARAMS, "seed": seed, "holdout": HOLDOUT, "engine": engine, "sample": sample},
        list(ds.X.columns),
        ds,
        {"scores": out / "scores.png"},
        engine=engine,
        wall_s=wall,
    )
