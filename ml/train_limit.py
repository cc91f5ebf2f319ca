"""``credit_limit``: gradient-boosted credit-limit regressor (see :mod:`ml.train`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ml import datasets as D
from ml.train_common import (
    HOLDOUT,
    SEED,
    XGB_REGRESSOR_PARAMS,
    Progress,
    TrainResult,
    _fit_xgb_regressor,
    _get,
    _noop,
    _run,
    _split,
    _tune,
    ensure_ray,
)
from ml.train_plots import _importance_plot, _plot_dir


def train_credit_limit(
    data: str | Path | None = None,
    *,
    sample: int | None = None,
    seed: int = SEED,
    engine: str = "ray-task",
    tune_trials: int = 0,
    params: dict[str, Any] | None = None,
    progress: Progress = _noop,
    ray_address: str | None = None,
) -> TrainResult:
    """Gradient-boosted credit-limit regressor; metrics: ``mae`` and ``mae_median_baseline``
    (currency units of the data, NT$ for UCI) and ``r2`` on the hold-out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import mean_absolute_error, r2_score

    t0 = time.perf_counter()
    ds = D.load_credit_limit(data, sample=sample, seed=seed)
    progress(f"data: {ds.info['rows']} rows")
    Xtr, Xte, ytr, yte = _split(ds.X, ds.y, seed, stratify=False)  # type: ignore[arg-type]
    p = dict(params or XGB_REGRESSOR_PARAMS)
    if engine != "local":
        ensure_ray(ray_address)
    if tune_trials > 0:
        progress(f"tune: {tune_trials} trials")
        p = _tune("regressor", Xtr, ytr, p, tune_trials, seed, progress)
    reg = _get(engine, _run(engine, _fit_xgb_regressor, Xtr, ytr, p, seed, 1))
    pred = reg.predict(Xte)
    metrics = {
        "mae": float(mean_absolute_error(yte, pred)),
        "mae_median_baseline": float(mean_absolute_error(yte, np.full(len(yte), np.median(ytr)))),
        "r2": float(r2_score(yte, pred)),
        "n_train": float(len(ytr)),
        "n_holdout": float(len(yte)),
    }
    out = _plot_dir()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(yte, pred, s=3, alpha=0.3)
    hi = float(max(np.max(yte), np.max(pred)))
    ax.plot([0, hi], [0, hi], "k:", lw=1)
    ax.set(xlabel="actual limit", ylabel="suggested limit", title="Credit limit (hold-out)")
    fig.tight_layout()
    fig.savefig(out / "pred_vs_actual.png", dpi=90)
    plt.close(fig)
    names = list(ds.X.columns)
    plots = {
        "pred_vs_actual": out / "pred_vs_actual.png",
        "feature_importance": _importance_plot(reg, names, out, "Credit-limit feature importance"),
    }
    wall = time.perf_counter() - t0
    metrics["train_wall_s"] = wall
    return TrainResult(
        "credit_limit",
        reg,
        metrics,
        {**p, "seed": seed, "holdout": HOLDOUT, "engine": engine, "sample": sample},
        names,
        ds,
        plots,
        engine=engine,
        wall_s=wall,
    )
