"""The compiled IsolationForest scorer of the risk pool's ML tier gives scikit-learn's scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from actors.risk_pool import CompiledIsolationForest, compile_anomaly_model


@pytest.mark.parametrize("max_features", [1.0, 0.6])
def test_compiled_matches_sklearn(max_features: float) -> None:
    rng = np.random.default_rng(3)
    iso = IsolationForest(n_estimators=30, max_features=max_features, random_state=0).fit(
        rng.normal(size=(800, 5))
    )
    X = np.vstack([rng.normal(size=(200, 5)), rng.normal(scale=5.0, size=(20, 5))])
    np.testing.assert_allclose(
        CompiledIsolationForest(iso).score(X), -iso.score_samples(X), rtol=0, atol=1e-12
    )


def test_compile_only_plain_iforest_without_challenger() -> None:
    iso = IsolationForest(n_estimators=5, random_state=0).fit(np.zeros((10, 5)) + np.arange(10)[:, None])

    class Models:
        def __init__(self, challengers: dict[str, object]) -> None:
            self.estimators = {"order_anomaly": iso}
            self.challengers = challengers

    assert isinstance(compile_anomaly_model(Models({})), CompiledIsolationForest)
    assert compile_anomaly_model(Models({"order_anomaly": ("2", iso)})) is None
    assert compile_anomaly_model(object()) is None


def test_equal_rows_scored_once_with_the_same_scores() -> None:
    rng = np.random.default_rng(5)
    iso = IsolationForest(n_estimators=30, random_state=0).fit(rng.normal(size=(500, 5)))
    distinct = rng.normal(size=(40, 5))
    X = distinct[rng.integers(0, 40, size=300)]  # 300 pairs, at most 40 distinct feature rows
    scores, n_distinct = CompiledIsolationForest(iso).score_counted(X)
    assert n_distinct == len({tuple(row) for row in X.astype(np.float32)}) <= 40
    np.testing.assert_allclose(scores, -iso.score_samples(X), rtol=0, atol=1e-12)
    one, n_one = CompiledIsolationForest(iso).score_counted(X[:1])
    assert n_one == 1 and one.shape == (1,)
    np.testing.assert_allclose(one, -iso.score_samples(X[:1]), rtol=0, atol=1e-12)
