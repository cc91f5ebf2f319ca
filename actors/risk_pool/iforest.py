"""The compiled IsolationForest scorer of the risk pool's ML tier (:mod:`actors.risk_pool.ml_tier`):
one fitted scikit-learn ``IsolationForest`` packed into flat NumPy arrays and scored for all rows and
trees at once, each distinct row once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class CompiledIsolationForest:
    """Vectorised scoring of a fitted scikit-learn ``IsolationForest``: the same ``s(x)`` as
    ``-estimator.score_samples(X)`` (Liu, Ting & Zhou 2008: ``s = 2^(-E[h(x)] / c(psi))``), computed
    for all rows and trees at once with NumPy instead of one ``tree.apply`` call per tree.

    All trees are packed into flat node arrays (leaves point to themselves); a (rows, trees) array of
    node ids descends one level per step for at most the deepest tree's depth. Inputs are rounded to
    float32 first, as scikit-learn does, so split decisions match exactly.
    """

    def __init__(self, estimator: Any) -> None:  # a fitted sklearn.ensemble.IsolationForest
        import numpy as np
        from sklearn.ensemble._iforest import _average_path_length

        trees = estimator.estimators_
        n_features = int(estimator.n_features_in_)
        subsample = int(estimator._max_features) != n_features
        lefts, rights, feats, thrs, plen, roots = [], [], [], [], [], []
        offset = 0
        depth = 0
        for t, (tree, features) in enumerate(zip(trees, estimator.estimators_features_, strict=True)):
            tr = tree.tree_
            n = tr.node_count
            left = tr.children_left.astype(np.int64)
            right = tr.children_right.astype(np.int64)
            leaf = left == -1
            idx = np.arange(n, dtype=np.int64)
            left = np.where(leaf, idx, left) + offset
            right = np.where(leaf, idx, right) + offset
            f = tr.feature.astype(np.int64)
            f = np.where(leaf, 0, f)
            if subsample:
                f = np.asarray(features, dtype=np.int64)[f]
            lefts.append(left)
            rights.append(right)
            feats.append(f)
            thrs.append(np.where(leaf, np.inf, tr.threshold))
            plen.append(
                estimator._decision_path_lengths[t] + estimator._average_path_length_per_tree[t] - 1.0
            )
            roots.append(offset)
            offset += n
            depth = max(depth, int(tr.max_depth))
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(feats)
        self.threshold = np.concatenate(thrs)
        self.path = np.concatenate(plen)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        self.n_features = n_features
        self.denominator = len(trees) * float(_average_path_length([estimator._max_samples])[0])

    def score(self, X: np.ndarray) -> np.ndarray:
        """``s(x)`` in (0, 1] for an (n, d) matrix, higher = more anomalous."""
        return self.score_counted(X)[0]

    def score_counted(self, X: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`score` and the number of distinct rows it scored. Equal rows (after the float32
        rounding) are scored once: a batch's pairs often repeat a row (one taker against resting
        orders of one price and size)."""
        import numpy as np

        x = np.asarray(X, dtype=np.float32)
        rows, inverse = np.unique(x, axis=0, return_inverse=True)
        return self._score_rows(rows.astype(np.float64))[inverse.reshape(-1)], rows.shape[0]

    def _score_rows(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, self.roots.shape[0])).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        depths = self.path[node].sum(axis=1)
        if self.denominator == 0:
            return np.ones(n)
        return np.power(2.0, -depths / self.denominator)


def compile_anomaly_model(models: object) -> CompiledIsolationForest | None:
    """A compiled scorer for the models' ``order_anomaly`` estimator when it is a plain
    scikit-learn IsolationForest without a shadow challenger; None otherwise (use the model)."""
    est = getattr(models, "estimators", {}).get("order_anomaly") if hasattr(models, "estimators") else None
    if est is None or type(est).__name__ != "IsolationForest":
        return None
    if getattr(models, "challengers", {}).get("order_anomaly") is not None:
        return None
    try:
        return CompiledIsolationForest(est)
    except Exception as exc:  # an unexpected scikit-learn layout: fall back to the model
        log.info("risk pool: IsolationForest not compiled (%s)", exc)
        return None
