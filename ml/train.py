"""Training of the three risk models on Ray.

- ``payment_default``: XGBoost classifier (Ray Train's ``XGBoostTrainer``, data-parallel over Ray
  Data shards; or plain xgboost inside a Ray task with ``engine="ray-task"``), with a RandomForest
  baseline trained beside it in its own Ray task. Data: UCI dataset 350 ("default of credit card
  clients", Yeh and Lien 2009), mapped to trade-credit history by :mod:`ml.features`. Evaluation on
  a stratified 20% hold-out (fixed seed): ROC-AUC, PR-AUC (average precision) and Brier score. The
  published XGBoost ROC-AUC on this dataset is about 0.78, which is the target.
- ``order_anomaly``: IsolationForest (Liu, Ting and Zhou 2008) over :data:`ml.features.ORDER_FEATURES`
  from Agmarknet-derived orders (plus the exchange's orders in PostgreSQL when a DSN is given).
  Its score is the paper's anomaly score ``s(x) = 2^(-E[h(x)]/c(n))`` in (0, 1], which scikit-learn
  returns negated by ``score_samples``. Without labels, it is summarised by score quantiles on a
  20% hold-out and by the ROC-AUC of telling hold-out orders from the same orders perturbed
  (price x1.5 or x0.6, quantity x25): a synthetic check, not a measured fraud rate.
- ``credit_limit``: gradient-boosted regressor (xgboost, absolute-error objective) of the credit
  limit on the payment-history features without the limit; MAE on a 20% hold-out, beside the MAE of
  predicting the training median.

Optional Ray Tune search (``tune_trials``) over the XGBoost hyper-parameters, scored by ROC-AUC or
MAE on an inner validation split of the training set; the hold-out is never seen by the search.

The trainers live one per model in :mod:`ml.train_payment`, :mod:`ml.train_anomaly` and
:mod:`ml.train_limit`, their shared parts in :mod:`ml.train_common` and :mod:`ml.train_plots`; this
module is the entry point (:func:`train`) and re-exports them.
"""

from __future__ import annotations

from typing import Any

from ml.train_anomaly import anomaly_scores, perturb_orders, train_order_anomaly
from ml.train_common import (
    HOLDOUT,
    IFOREST_PARAMS,
    MODELS,
    RF_PARAMS,
    SEED,
    XGB_CLASSIFIER_PARAMS,
    XGB_REGRESSOR_PARAMS,
    Progress,
    TrainResult,
    _fit_iforest,
    _fit_rf,
    _fit_xgb_classifier,
    _fit_xgb_regressor,
    _get,
    _noop,
    _ray_train_xgb,
    _run,
    _split,
    _tune,
    ensure_ray,
)
from ml.train_limit import train_credit_limit
from ml.train_payment import classifier_metrics, train_payment_default

__all__ = [
    "SEED",
    "HOLDOUT",
    "MODELS",
    "XGB_CLASSIFIER_PARAMS",
    "RF_PARAMS",
    "IFOREST_PARAMS",
    "XGB_REGRESSOR_PARAMS",
    "TrainResult",
    "Progress",
    "_noop",
    "ensure_ray",
    "_split",
    "_fit_xgb_classifier",
    "_fit_rf",
    "_fit_xgb_regressor",
    "_fit_iforest",
    "_run",
    "_get",
    "_ray_train_xgb",
    "_tune",
    "classifier_metrics",
    "perturb_orders",
    "anomaly_scores",
    "train_payment_default",
    "train_order_anomaly",
    "train_credit_limit",
    "train",
]


def train(model: str, data: Any = None, **kw: Any) -> TrainResult:
    """Dispatch to the trainer of ``model`` (one of :data:`MODELS`)."""
    if model == "payment_default":
        return train_payment_default(data, **kw)
    if model == "order_anomaly":
        kw.pop("tune_trials", None)
        kw.pop("workers", None)
        return train_order_anomaly(data, **kw)
    if model == "credit_limit":
        kw.pop("workers", None)
        return train_credit_limit(data, **kw)
    raise ValueError(f"unknown model {model!r}: use one of {', '.join(MODELS)}")
