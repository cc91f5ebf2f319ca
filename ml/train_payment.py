"""``payment_default``: XGBoost classifier with a RandomForest baseline (see :mod:`ml.train`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ml import datasets as D
from ml.train_common import (
    HOLDOUT,
    RF_PARAMS,
    SEED,
    XGB_CLASSIFIER_PARAMS,
    Progress,
    TrainResult,
    _fit_rf,
    _fit_xgb_classifier,
    _get,
    _noop,
    _prefix,
    _ray_train_xgb,
    _run,
    _split,
    _tune,
    ensure_ray,
)
from ml.train_plots import _classifier_plots


def classifier_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision) and Brier score of probabilities ``p`` (n,) for labels ``y``."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def train_payment_default(
    data: str | Path | None = None,
    *,
    sample: int | None = None,
    seed: int = SEED,
    engine: str = "ray-train",
    tune_trials: int = 0,
    workers: int = 2,
    params: dict[str, Any] | None = None,
    progress: Progress = _noop,
    ray_address: str | None = None,
) -> TrainResult:
    """XGBoost payment-default classifier with a RandomForest baseline; metrics on the hold-out.

    ``engine``: ``ray-train`` (XGBoostTrainer, ``workers`` data-parallel workers), ``ray-task``
    (xgboost in one Ray task) or ``local`` (in-process, for quick tests); ``ray_address``: the
    cluster to use (None: a local Ray). Raises :class:`ml.datasets.DataShapeError` when ``data`` is
    not shaped like UCI dataset 350. Metrics: ``roc_auc``,
    ``pr_auc``, ``brier`` of XGBoost and ``rf_*`` of the baseline.
    """
    t0 = time.perf_counter()
    ds = D.load_credit(data, sample=sample, seed=seed)
    progress(f"data: {ds.info['rows']} rows, {ds.info['positive_rate']:.2%} positives")
    Xtr, Xte, ytr, yte = _split(ds.X, ds.y, seed)  # type: ignore[arg-type]
    p = dict(params or XGB_CLASSIFIER_PARAMS)
    if engine != "local":
        ensure_ray(ray_address)
    if tune_trials > 0:
        progress(f"tune: {tune_trials} trials")
        p = _tune("classifier", Xtr, ytr, p, tune_trials, seed, progress)
    rf_ref = _run(engine, _fit_rf, Xtr, ytr, RF_PARAMS, seed, 1)
    used = engine
    if engine == "ray-train":
        progress(f"xgboost: Ray Train XGBoostTrainer, {workers} workers")
        try:
            clf = _ray_train_xgb(Xtr, ytr, p, seed, workers, tempfile.mkdtemp(prefix="td-train-"))
        except Exception as exc:  # pragma: no cover - depends on the cluster
            progress(f"Ray Train failed ({type(exc).__name__}: {exc}); falling back to a Ray task")
            used = "ray-task"
            clf = _get("ray-task", _run("ray-task", _fit_xgb_classifier, Xtr, ytr, p, seed, 1))
    else:
        progress(f"xgboost: {engine}")
        clf = _get(engine, _run(engine, _fit_xgb_classifier, Xtr, ytr, p, seed, 1))
    progress("random forest baseline")
    rf = _get(engine, rf_ref)
    p_xgb = clf.predict_proba(Xte)[:, 1]
    p_rf = rf.predict_proba(Xte)[:, 1]
    metrics = classifier_metrics(yte, p_xgb)
    metrics.update({f"rf_{k}": v for k, v in classifier_metrics(yte, p_rf).items()})
    # the training population's default rate: the prior of a party without payment history (ml.serving)
    metrics.update(
        {"n_train": float(len(ytr)), "n_holdout": float(len(yte)), "positive_rate": float(np.mean(ytr))}
    )
    names = list(ds.X.columns)
    plots = _classifier_plots(yte, {"XGBoost": p_xgb, "RandomForest": p_rf}, clf, names)
    wall = time.perf_counter() - t0
    metrics["train_wall_s"] = wall
    return TrainResult(
        "payment_default",
        clf,
        metrics,
        {
            **p,
            "seed": seed,
            "holdout": HOLDOUT,
            "engine": used,
            "sample": sample,
            **_prefix("rf_", RF_PARAMS),
        },
        names,
        ds,
        plots,
        baseline=rf,
        engine=used,
        wall_s=wall,
    )
