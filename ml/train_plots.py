"""PNG plots of a training run (feature importance; ROC, precision-recall and calibration of a
classifier), written to a fresh temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------ plots


def _plot_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="td-plots-"))


def _importance_plot(est: Any, names: list[str], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imp = np.asarray(getattr(est, "feature_importances_", np.zeros(len(names))), dtype="float64")
    order = np.argsort(imp)[::-1][:20][::-1]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([names[i] for i in order], imp[order])
    ax.set_title(title)
    ax.set_xlabel("importance (gain share)")
    fig.tight_layout()
    path = out / "feature_importance.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _classifier_plots(y: np.ndarray, scores: dict[str, np.ndarray], est: Any, names: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = _plot_dir()
    paths: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (hold-out)")
    ax.legend()
    fig.tight_layout()
    paths["roc"] = out / "roc.png"
    fig.savefig(paths["roc"], dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, p in scores.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=label)
    ax.axhline(float(np.mean(y)), color="k", ls=":", lw=1)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (hold-out)")
    ax.legend()
    fig.tight_layout()
    paths["pr"] = out / "pr.png"
    fig.savefig(paths["pr"], dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, p in scores.items():
        frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean_pred, frac, marker="o", label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted probability", ylabel="observed default rate", title="Calibration")
    ax.legend()
    fig.tight_layout()
    paths["calibration"] = out / "calibration.png"
    fig.savefig(paths["calibration"], dpi=90)
    plt.close(fig)
    paths["feature_importance"] = _importance_plot(est, names, out, "XGBoost feature importance")
    return paths


# ---------------------------------------------------------------------------------------- models
