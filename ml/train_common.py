"""What the three trainers share: seeds and default hyper-parameters, :class:`TrainResult`, Ray
start-up, the hold-out split, estimator fits run as Ray tasks, Ray Train XGBoost and the Ray Tune
search (see :mod:`ml.train` for the models).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import datasets as D

SEED = 42
HOLDOUT = 0.2
MODELS = ("payment_default", "order_anomaly", "credit_limit")

XGB_CLASSIFIER_PARAMS: dict[str, Any] = {
    "n_estimators": 600,
    "learning_rate": 0.03,
    "max_depth": 3,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
}
RF_PARAMS: dict[str, Any] = {"n_estimators": 300, "min_samples_leaf": 20, "max_features": "sqrt"}
IFOREST_PARAMS: dict[str, Any] = {"n_estimators": 200, "max_samples": 256}
XGB_REGRESSOR_PARAMS: dict[str, Any] = {
    "n_estimators": 500,
    "learning_rate": 0.05,
    "max_depth": 6,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}


@dataclass
class TrainResult:
    """One training run: the fitted estimator served as ``model``, its hold-out metrics, the
    parameters, the feature list, the dataset provenance, PNG plots (name -> path) and, for the
    classifier, the hold-out ``(X, y)`` it was evaluated on."""

    model: str
    estimator: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    feature_names: list[str]
    dataset: D.Dataset
    plots: dict[str, Path] = field(default_factory=dict)
    baseline: Any = None
    engine: str = "ray-task"
    wall_s: float = 0.0
    holdout: tuple[Any, Any] | None = None


Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


def ensure_ray(address: str | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (``auto`` or ``host:port``), or start a local Ray when
    it is None, unless already connected. A local Ray advertises at least 4 logical CPUs so that the Ray Train
    workers, the baseline task and Ray Data's coordinator can all be scheduled on a 2-core machine
    (they are mostly not busy at the same time)."""
    import os

    import ray

    if ray.is_initialized():
        return
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        kw["num_cpus"] = max(4, os.cpu_count() or 1)
    ray.init(address=address, **kw)


def _split(X: pd.DataFrame, y: np.ndarray, seed: int, stratify: bool = True):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=HOLDOUT, random_state=seed, stratify=y if stratify else None)


# ------------------------------------------------------------------------------ estimators (tasks)


def _fit_xgb_classifier(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, nthread: int):
    import xgboost as xgb

    clf = xgb.XGBClassifier(
        **params, tree_method="hist", eval_metric="auc", random_state=seed, n_jobs=nthread
    )
    clf.fit(X, y)
    return clf


def _fit_rf(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, nthread: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params, random_state=seed, n_jobs=nthread).fit(X, y)


def _fit_xgb_regressor(X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, nthread: int):
    import xgboost as xgb

    reg = xgb.XGBRegressor(
        **params, objective="reg:absoluteerror", tree_method="hist", random_state=seed, n_jobs=nthread
    )
    return reg.fit(X, y)


def _fit_iforest(X: pd.DataFrame, params: dict[str, Any], seed: int, nthread: int):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(**params, random_state=seed, n_jobs=nthread).fit(X)


def _run(engine: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a Ray task (one CPU) unless ``engine == "local"``; returns an ObjectRef
    or, locally, the value (resolve with :func:`_get`)."""
    if engine == "local":
        return fn(*args)
    import ray

    return ray.remote(num_cpus=1)(fn).remote(*args)


def _get(engine: str, value: Any) -> Any:
    if engine == "local":
        return value
    import ray

    return ray.get(value)


def _ray_train_xgb(
    X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], seed: int, workers: int, storage: str
):
    """Data-parallel XGBoost with Ray Train's XGBoostTrainer on Ray Data shards; returns an
    ``xgboost.XGBClassifier`` holding the trained booster, so it is served like the others."""
    import ray.data
    import ray.train
    import xgboost as xgb
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    booster_params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "tree_method": "hist",
        "eta": params["learning_rate"],
        "max_depth": params["max_depth"],
        "min_child_weight": params["min_child_weight"],
        "subsample": params["subsample"],
        "colsample_bytree": params["colsample_bytree"],
        "lambda": params.get("reg_lambda", 1.0),
        "seed": seed,
        "nthread": 1,
    }
    rounds = int(params["n_estimators"])
    names = list(X.columns)

    class ReportAtEnd(RayTrainReportCallback):
        """Report (metrics and the checkpoint) once, after the last round: a report per boosting
        round is a synchronous round trip to the controller and dominated the run time."""

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self._evals_log = evals_log
            return False

    def train_fn(config: dict[str, Any]) -> None:
        shard = ray.train.get_dataset_shard("train").materialize().to_pandas()
        dtrain = xgb.DMatrix(shard[config["names"]], label=shard["__label__"])
        xgb.train(
            config["params"],
            dtrain,
            num_boost_round=config["rounds"],
            evals=[(dtrain, "train")],
            verbose_eval=False,
            callbacks=[ReportAtEnd(metrics={"train_auc": "train-auc"})],
        )

    frame = X.copy()
    frame["__label__"] = y
    trainer = XGBoostTrainer(
        train_fn,
        train_loop_config={"params": booster_params, "rounds": rounds, "names": names},
        datasets={"train": ray.data.from_pandas(frame)},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(storage_path=storage, name="payment_default"),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError("Ray Train returned no checkpoint")
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    clf = xgb.XGBClassifier()
    clf.load_model(bytearray(booster.save_raw("json")))
    return clf


# ------------------------------------------------------------------------------------------ tune


def _tune(
    kind: str,
    X: pd.DataFrame,
    y: np.ndarray,
    base: dict[str, Any],
    trials: int,
    seed: int,
    progress: Progress,
) -> dict[str, Any]:
    """Ray Tune random search; returns the best parameters (base updated). ``kind``: classifier
    (maximise ROC-AUC) or regressor (minimise MAE), on an inner 20% split of the training set."""
    from ray import tune

    Xtr, Xva, ytr, yva = _split(X, y, seed + 1, stratify=kind == "classifier")

    def trainable(config: dict[str, Any], data: Any = None) -> None:
        from sklearn.metrics import mean_absolute_error, roc_auc_score

        xtr, xva, ttr, tva = data
        params = {**base, **config}
        if kind == "classifier":
            m = _fit_xgb_classifier(xtr, ttr, params, seed, 1)
            tune.report({"score": float(roc_auc_score(tva, m.predict_proba(xva)[:, 1]))})
        else:
            m = _fit_xgb_regressor(xtr, ttr, params, seed, 1)
            tune.report({"score": -float(mean_absolute_error(tva, m.predict(xva)))})

    space = {
        "max_depth": tune.randint(3, 8),
        "learning_rate": tune.loguniform(0.01, 0.2),
        "min_child_weight": tune.loguniform(1.0, 20.0),
        "subsample": tune.uniform(0.6, 1.0),
        "colsample_bytree": tune.uniform(0.5, 1.0),
        "n_estimators": tune.choice([200, 400, 600]),
    }
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=(Xtr, Xva, ytr, yva)), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(num_samples=trials, metric="score", mode="max"),
        run_config=tune.RunConfig(
            storage_path=tempfile.mkdtemp(prefix="td-tune-"), verbose=0, name=f"tune_{kind}"
        ),
    )
    results = tuner.fit()
    best = results.get_best_result(metric="score", mode="max")
    config, scores = best.config or {}, best.metrics or {}
    best_cfg = {k: config[k] for k in space}
    progress(f"tune: best score {scores.get('score', float('nan')):.4f} with {best_cfg}")
    return {**base, **best_cfg}


def _prefix(pre: str, d: dict[str, Any]) -> dict[str, Any]:
    return {f"{pre}{k}": v for k, v in d.items()}
