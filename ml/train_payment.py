"""``payment_default``: XGBoost classifier with a RandomForest baseline (see :mod:`ml.train`).

Two data sources: ``uci`` (the bootstrap, UCI dataset 350, stratified 20% hold-out) and ``desk``
(the desk's own invoices in PostgreSQL, :mod:`ml.desk_data`: train on the earlier invoices,
evaluate on the later ones). The run records which (``data_source``) with the dataset hash and row
counts; :func:`evaluate_on` scores another model (e.g. the UCI-trained champion) on the same hold-out.
"""

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


def evaluate_on(estimator: Any, holdout: tuple[Any, np.ndarray]) -> dict[str, float]:
    """:func:`classifier_metrics` of ``estimator`` (anything with ``predict_proba``) on a hold-out
    ``(X, y)`` (a :attr:`TrainResult.holdout`)."""
    X, y = holdout
    return classifier_metrics(y, estimator.predict_proba(X)[:, 1])


def _desk_dataset(
    dsn: str | None, late_days: float, holdout: float
) -> tuple[D.Dataset, Any, Any, np.ndarray, np.ndarray]:
    """The desk's rows as a :class:`ml.datasets.Dataset` plus the time split (Xtr, Xte, ytr, yte)."""
    import pandas as pd

    if not dsn:
        raise D.DataShapeError("--source desk needs a database: give --dsn or set TRADEDESK_DATABASE_URL")
    rows = D.load_desk(dsn, late_days=late_days, holdout=holdout)
    X = pd.concat([rows.X_train, rows.X_holdout])
    y = np.concatenate([rows.y_train, rows.y_holdout])
    ds = D.Dataset(X, y, rows.sha256, "postgresql:ml_settlements", {**rows.info, "rows": len(X)})
    ds.info["positive_rate"] = float(y.mean())
    return ds, rows.X_train, rows.X_holdout, rows.y_train, rows.y_holdout


def train_payment_default(
    data: str | Path | None = None,
    *,
    source: str = "uci",
    dsn: str | None = None,
    late_days: float = 30.0,
    holdout: float = 0.3,
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
    cluster to use (None: a local Ray). ``source``: ``uci`` (``data``: the UCI file, stratified
    20% hold-out) or ``desk`` (``dsn``: the desk's PostgreSQL; invoices late beyond ``late_days`` are
    positives; the later ``holdout`` fraction of invoices is the hold-out; ``sample`` is ignored).
    Raises :class:`ml.datasets.DataShapeError` when ``data`` is not shaped like UCI dataset 350 or
    the desk has too little history. Metrics: ``roc_auc``, ``pr_auc``, ``brier`` of XGBoost and
    ``rf_*`` of the baseline, on the hold-out.
    """
    t0 = time.perf_counter()
    if source == "desk":
        ds, Xtr, Xte, ytr, yte = _desk_dataset(dsn, late_days, holdout)
        progress(
            f"desk data: {ds.info['rows_train']} train invoices (issued before {ds.info['cut_ts']}),"
            f" {ds.info['rows_holdout']} later hold-out invoices, {ds.info['parties']} parties"
        )
    elif source == "uci":
        ds = D.load_credit(data, sample=sample, seed=seed)
        progress(f"data: {ds.info['rows']} rows, {ds.info['positive_rate']:.2%} positives")
        Xtr, Xte, ytr, yte = _split(ds.X, ds.y, seed)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown data source {source!r}: use uci or desk")
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
            "holdout": HOLDOUT if source == "uci" else holdout,
            "data_source": source,
            **({"late_days": late_days} if source == "desk" else {}),
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
        holdout=(Xte, yte),
    )
