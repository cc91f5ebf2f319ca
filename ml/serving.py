"""Serving side of the risk models: load the champions from the registry and score feature rows.

The risk pool's ML tier (``actors/risk_pool/ml_tier.py``) calls :func:`load_models` on every
``reconfigure`` (a promotion or rollback) and scores with the returned :class:`RiskModels`:

- ``payment_default_proba(X) -> (n,)`` probability in [0, 1] that the buyer defaults / pays late,
  exactly ``predict_proba(X)[:, 1]`` of the registered XGBoost classifier;
- ``anomaly_score(X) -> (n,)`` in [0, 1], higher = more anomalous (IsolationForest score
  ``s(x)``, see :func:`ml.train.anomaly_scores`);
- ``suggested_credit_limit(X) -> (n,)`` in major currency units (rupees for live parties).

``X`` is a DataFrame with the model's feature columns (:mod:`ml.features`; extra columns are
ignored) or an array already in feature order. A model without a champion scores NaN.

**Shadow scoring.** When a model has a ``challenger`` and a shadow fraction > 0 (registered-model tag
``shadow_fraction``, set by ``tradedesk models shadow MODEL FRACTION``, or the ``shadow_fraction``
argument), a random sample of that fraction of scored rows is also scored by the challenger; both
scores are recorded (:class:`ShadowRecorder`: in memory, and in PostgreSQL table
``ml_shadow_scores`` when a DSN is given) and only the champion's score is returned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import features as F

log = logging.getLogger(__name__)

SHADOW_TAG = "shadow_fraction"

#: Default probability served for a party without payment history of its own when the champion did
#: not record its training population's rate (metric ``positive_rate``): the default rate of UCI
#: dataset 350, 6,636 of 30,000 clients (Yeh and Lien 2009). docs/risk.md, "Parties without history".
PAYMENT_DEFAULT_PRIOR = 6636 / 30000


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """One shadow-scored row: champion (decided) and challenger (recorded) scores."""

    ts: int
    model: str
    subject: str
    champion_version: str
    challenger_version: str
    champion_score: float
    challenger_score: float


class ShadowRecorder:
    """Keeps the last ``maxlen`` shadow records in memory and, with a ``dsn``, writes them to
    ``ml_shadow_scores`` from a background thread every ``flush_s`` seconds (scoring never waits on
    the database; a failed write is logged and its records dropped from the queue)."""

    def __init__(self, dsn: str | None = None, maxlen: int = 100_000, flush_s: float = 1.0) -> None:
        self.records: deque[ShadowRecord] = deque(maxlen=maxlen)
        self.dsn = dsn
        self._pending: deque[ShadowRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flush_s = flush_s
        if dsn:
            self._thread = threading.Thread(target=self._loop, name="shadow-flush", daemon=True)
            self._thread.start()

    def record(self, records: list[ShadowRecord]) -> None:
        with self._lock:
            self.records.extend(records)
            if self.dsn:
                self._pending.extend(records)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def flush(self) -> int:
        """Write pending records to PostgreSQL now; returns how many were written."""
        if not self.dsn:
            return 0
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        if not batch:
            return 0
        try:
            import psycopg2
            import psycopg2.extras

            conn = psycopg2.connect(self.dsn)
            try:
                with conn, conn.cursor() as cur:
                    psycopg2.extras.execute_values(
                        cur,
                        "INSERT INTO ml_shadow_scores (ts, model, subject, champion_version,"
                        " challenger_version, champion_score, challenger_score) VALUES %s",
                        [
                            (
                                r.ts,
                                r.model,
                                r.subject,
                                r.champion_version,
                                r.challenger_version,
                                r.champion_score,
                                r.challenger_score,
                            )
                            for r in batch
                        ],
                    )
            finally:
                conn.close()
        except Exception as exc:
            log.warning("shadow scores: %d records not written: %s", len(batch), exc)
            return 0
        return len(batch)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def shadow_report(records: list[ShadowRecord] | pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """A/B comparison per model from shadow records: rows, mean champion and challenger scores,
    mean absolute difference, Pearson correlation, and the share of rows where both sides fall on
    the same side of ``threshold`` (for payment default: would both flag the buyer)."""
    df = records if isinstance(records, pd.DataFrame) else pd.DataFrame([r.__dict__ for r in records])
    cols = ["model", "n", "champion_mean", "challenger_mean", "mean_abs_diff", "corr", "agreement"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (model, cv, chv), g in df.groupby(["model", "champion_version", "challenger_version"]):
        a = g["champion_score"].to_numpy(dtype="float64")
        b = g["challenger_score"].to_numpy(dtype="float64")
        corr = float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and a.std() > 0 and b.std() > 0 else float("nan")
        rows.append(
            {
                "model": f"{model} v{cv} vs v{chv}",
                "n": len(g),
                "champion_mean": float(a.mean()),
                "challenger_mean": float(b.mean()),
                "mean_abs_diff": float(np.abs(a - b).mean()),
                "corr": corr,
                "agreement": float(np.mean((a >= threshold) == (b >= threshold))),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _frame(X: Any, model: str) -> pd.DataFrame:
    """Features as a DataFrame in the model's column order (the estimators were fitted on one)."""
    names = F.feature_names(model)
    if isinstance(X, pd.DataFrame):
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"{model}: missing feature columns {missing}")
        return X[names].astype("float64")
    return pd.DataFrame(F.as_matrix(X, model), columns=names)


def _score(model: str, estimator: Any, X: pd.DataFrame) -> np.ndarray:
    if model == "payment_default":
        return np.asarray(estimator.predict_proba(X)[:, 1], dtype="float64")
    if model == "order_anomaly":
        return np.clip(-estimator.score_samples(X.to_numpy(dtype="float64")), 0.0, 1.0)
    return np.asarray(estimator.predict(X), dtype="float64")


@dataclass
class RiskModels:
    """The served models of one alias (normally ``champion``).

    ``versions``: model -> registry version of the loaded models; ``feature_names``: model -> its
    feature columns; ``estimators``: model -> fitted estimator; ``challengers``: model ->
    (version, estimator) shadow-scored on ``shadow_fraction[model]`` of rows;
    ``payment_default_prior``: the default probability of a party without payment history (the
    champion's training default rate, else :data:`PAYMENT_DEFAULT_PRIOR`).
    """

    versions: dict[str, str]
    estimators: dict[str, Any]
    feature_names: dict[str, list[str]] = field(default_factory=dict)
    challengers: dict[str, tuple[str, Any]] = field(default_factory=dict)
    shadow_fraction: dict[str, float] = field(default_factory=dict)
    recorder: ShadowRecorder | None = None
    seed: int | None = None
    clock: Callable[[], float] = time.time
    payment_default_prior: float = PAYMENT_DEFAULT_PRIOR

    def __post_init__(self) -> None:
        if not self.feature_names:
            self.feature_names = {m: F.feature_names(m) for m in self.estimators}
        self._rng = np.random.default_rng(self.seed)
        self._rng_lock = threading.Lock()

    @property
    def available(self) -> set[str]:
        return set(self.estimators)

    def _run(self, model: str, X: Any) -> np.ndarray:
        est = self.estimators.get(model)
        if est is None:
            n = len(X) if hasattr(X, "__len__") else 1
            return np.full(n, np.nan)
        frame = _frame(X, model)
        scores = _score(model, est, frame)
        frac = self.shadow_fraction.get(model, 0.0)
        challenger = self.challengers.get(model)
        if challenger is not None and frac > 0 and len(frame):
            try:
                self._shadow(model, frame, scores, challenger, frac)
            except Exception as exc:  # the challenger never affects the decision
                log.warning("shadow scoring of %s failed: %s", model, exc)
        return scores

    def _shadow(
        self, model: str, frame: pd.DataFrame, scores: np.ndarray, challenger: tuple[str, Any], frac: float
    ) -> None:
        with self._rng_lock:
            pick = np.flatnonzero(self._rng.random(len(frame)) < frac)
        if not len(pick):
            return
        version, est = challenger
        other = _score(model, est, frame.iloc[pick])
        ts = int(self.clock() * 1000)
        records = [
            ShadowRecord(
                ts,
                model,
                str(frame.index[i]),
                self.versions.get(model, ""),
                version,
                float(scores[i]),
                float(other[j]),
            )
            for j, i in enumerate(pick)
        ]
        if self.recorder is None:
            self.recorder = ShadowRecorder()
        self.recorder.record(records)

    def payment_default_proba(self, X: Any) -> np.ndarray:
        """(n,) probability of default/late payment for n rows of payment features."""
        return self._run("payment_default", X)

    def anomaly_score(self, X: Any) -> np.ndarray:
        """(n,) anomaly score in [0, 1] (higher = more anomalous) for n rows of order features."""
        return self._run("order_anomaly", X)

    def suggested_credit_limit(self, X: Any) -> np.ndarray:
        """(n,) suggested credit limit, major currency units (rupees), for n rows of
        credit-limit features (a payment-features frame works: extra columns are ignored)."""
        return self._run("credit_limit", X)


def load_models(
    tracking_uri: str,
    alias: str = "champion",
    *,
    shadow_alias: str = "challenger",
    shadow_fraction: float | None = None,
    shadow_dsn: str | None = None,
    artifact_dir: str | None = None,
    seed: int | None = None,
) -> RiskModels | None:
    """Load every risk model holding ``alias``; None when no model holds it.

    Shadow scoring: for each model with a ``shadow_alias`` version different from the served one,
    the fraction is ``shadow_fraction`` if given, else the registered model's ``shadow_fraction``
    tag (default 0: off). Records go to a :class:`ShadowRecorder` (in memory, and in PostgreSQL at
    ``shadow_dsn`` when given).
    """
    from ml.registry import Registry, registered_name

    reg = Registry(tracking_uri, artifact_dir)
    estimators: dict[str, Any] = {}
    versions: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    challengers: dict[str, tuple[str, Any]] = {}
    fractions: dict[str, float] = {}
    prior: float | None = None
    for model in F.MODEL_FEATURES:
        loaded = reg.load(model, alias)
        if loaded is None:
            continue
        est, info = loaded
        if info.features != F.feature_names(model):
            log.warning("%s v%s: feature schema differs from ml.features; not served", model, info.version)
            continue
        estimators[model], versions[model], names[model] = est, info.version, info.features
        if model == "payment_default":
            prior = info.metrics.get("positive_rate")
        frac = shadow_fraction
        if frac is None:
            try:
                tags = reg.client.get_registered_model(registered_name(model)).tags or {}
                frac = float(tags.get(SHADOW_TAG, 0.0))
            except Exception:
                frac = 0.0
        if frac > 0:
            other = reg.load(model, shadow_alias)
            if other is not None and other[1].version != info.version:
                if other[1].features == info.features:
                    challengers[model] = (other[1].version, other[0])
                    fractions[model] = float(frac)
                else:
                    log.warning(
                        "%s challenger v%s: feature schema differs; no shadow", model, other[1].version
                    )
    if not estimators:
        return None
    recorder = ShadowRecorder(shadow_dsn) if challengers else None
    models = RiskModels(versions, estimators, names, challengers, fractions, recorder, seed)
    if prior is not None and 0.0 <= prior <= 1.0:
        models.payment_default_prior = prior
    return models
